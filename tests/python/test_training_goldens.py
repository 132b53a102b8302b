"""The training-op goldens (SEMANTICS §7) are what scripts/make-training-goldens.py computes now, and its numpy
implementation agrees with hand-worked values of the formulas."""
import importlib.util
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "make-training-goldens.py")


def load():
    spec = importlib.util.spec_from_file_location("make_training_goldens", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_goldens_are_fresh():
    result = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ulq_by_hand():
    m = load()
    f = np.float32
    # INT8, clamp_max 4.96875, clamp_min −3: s = 2^-5, o = −96, lo = −3, hi = 4.96875.
    x = np.array([-4, -3, 0.046875, 0.078125, 5, 1.0], dtype=f)  # 1.5·s → 2·s, 2.5·s → 2·s (half to even)
    g = np.array([1, 2, 3, 4, 5, 6], dtype=f)
    y, dx, dmax, dmin = m.acts_ulq(x, g, 4.96875, -3, False, 8)
    s = f(2 ** -5)
    assert list(y) == [-3, -3, 2 * s, 2 * s, 4.96875, 1.0]
    assert list(dx) == [0, 2, 3, 4, 0, 6]
    # L = (round(x/s) − x/s)/255: 0 at the grid points, +0.5/255 at 1.5·s, −0.5/255 at 2.5·s; cmin/s = −96 exactly.
    assert np.isclose(dmax, 3 * 0.5 / 255 + 4 * -0.5 / 255 + 5)
    assert np.isclose(dmin, 1 - (3 * 0.5 / 255 + 4 * -0.5 / 255))
    # fixed_min: no gradient for clamp_min.
    assert m.acts_ulq(x, g, 4.96875, -3, True, 8)[3] == 0


def test_arq_and_wts_ulq_by_hand():
    m = load()
    f = np.float32
    lay = {"groups": 1, "outer": 1, "channels_per_group": 2, "inner": 3}
    w = np.array([1, -2, 0.5, 0, 0, 0], dtype=f)
    scales = m.arq_scales(w, lay, 8)
    assert list(scales) == [f(2) / f(128), 1]  # |min| > |max|: /2^(b−1); zeros: 1
    # WtsULQ with clip 1 on channel 0 (s = 1/127): −2 is outside (q = −128), 1 and 0.5 inside.
    g = np.ones(6, dtype=f)
    y, dw, dc = m.wts_ulq(w, g, lay, np.array([1, 0], dtype=f), 8)
    s = f(1) / f(127)
    assert y[1] == s * -128 and list(dw) == [1, 0, 1, 1, 1, 1]
    v = f(0.5) / s
    assert np.isclose(dc[0], (np.rint(v) - v) / 127 + (-128) / 127)
    assert dc[1] == 0
