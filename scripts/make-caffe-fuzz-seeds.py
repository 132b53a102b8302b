#!/usr/bin/env python3
"""Writes the FuzzCaffe seeds (Fuzz/seeds/caffe): prototxt text, a NUL byte, the caffemodel's bytes, for the small
nets of tests/python/test_caffe.py; and one prototxt alone. Run with the test venv:
    .venv/bin/python scripts/make-caffe-fuzz-seeds.py
"""
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import test_caffe  # noqa: E402
from caffeutil import Net  # noqa: E402

out = os.path.join(ROOT, "Fuzz", "seeds", "caffe")
os.makedirs(out, exist_ok=True)
nets = {"conv_stack": test_caffe.conv_stack()[0], "branches": test_caffe.branches()[0],
        "sample": test_caffe.sample_net()}
pool = Net((1, 2, 7, 9))
pool.add("Pooling", "pool", ["data"], ["pool"], [], "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }")
pool.add("LRN", "lrn", ["pool"], ["lrn"], [], "lrn_param { local_size: 3 norm_region: WITHIN_CHANNEL }")
with tempfile.TemporaryDirectory() as tmp:
    for name, net in nets.items():
        p, m = net.save(tmp)
        with open(os.path.join(out, name), "wb") as f:
            f.write(open(p, "rb").read() + b"\0" + open(m, "rb").read())
    p, _ = pool.save(tmp)
    with open(os.path.join(out, "pool_only"), "wb") as f:
        f.write(open(p, "rb").read())
