"""The digits CNN fixture (the retraining target of issue 10): it is a valid model, onnxruntime runs it as the numpy
network make_fixtures.py trained, it is accurate, its data splits are consistent, and its training code is
deterministic with exact gradients. The digits_cnn configs compress it into valid models that lose accuracy."""
import json
import os
import sys

import numpy as np
import onnx
import pytest

import ortutil
from conftest import FIXTURES, run

sys.path.insert(0, FIXTURES)
import make_fixtures as mf  # noqa: E402  (the fixture's own numpy network; needs onnx and numpy only)

MODEL = os.path.join(FIXTURES, "digits_cnn.onnx")
CONFIGS = os.path.join(FIXTURES, "configs")


def split(name):
    d = np.load(os.path.join(FIXTURES, f"digits_{name}.npz"))
    return {k: d[k] for k in d.files}


def accuracy(model_path, data):
    return float((ortutil.run(model_path, {"image": data["image"]})[0].argmax(1) == data["label"]).mean())


def test_checker_io_and_size():
    onnx.checker.check_model(MODEL, full_check=True)
    m = onnx.load(MODEL)
    assert m.opset_import[0].version == 13
    dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert (m.graph.input[0].name, dims) == ("image", ["N", 1, 8, 8])
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 6 and ops.count("BatchNormalization") == 6 and ops.count("Add") == 2
    assert ops[-3:] == ["GlobalAveragePool", "Flatten", "Gemm"]
    for name in ("digits_cnn.onnx", "digits_train.npz", "digits_test.npz"):
        assert os.path.getsize(os.path.join(FIXTURES, name)) < 200_000, name


def test_splits_are_consistent():
    train, test = split("train"), split("test")
    for d, n in ((train, 1257), (test, 540)):
        assert d["input"].dtype == np.float32 and d["input"].shape == (n, 64)
        assert np.array_equal(d["image"], d["input"].reshape(n, 1, 8, 8))
        assert d["label"].dtype == np.int64 and d["label"].shape == (n,)
        assert d["input"].min() >= 0 and d["input"].max() <= 1
        # stratified 70/30: every class keeps its share in both splits
        assert np.bincount(d["label"], minlength=10).min() >= 0.09 * n


def test_onnxruntime_equals_numpy_forward_and_accuracy():
    test = split("test")
    params = mf.cnn_params_from_onnx(onnx.load(MODEL))
    ref, _ = mf.cnn_forward(test["image"].astype(np.float64), params)
    got = ortutil.run(MODEL, {"image": test["image"]})[0]
    assert np.abs(got - ref).max() <= 1e-5
    acc = float((got.argmax(1) == test["label"]).mean())
    print(f"digits_cnn float test accuracy {acc:.4f}")
    assert acc >= 0.97
    assert accuracy(MODEL, split("train")) >= acc


def test_committed_model_is_what_the_exporter_writes():
    committed = onnx.load(MODEL)
    again = mf.cnn_export(mf.cnn_params_from_onnx(committed))
    assert again.SerializeToString() == committed.SerializeToString()


def test_training_is_seeded_and_deterministic():
    train = split("train")
    x, y = train["image"][:200].astype(np.float64), train["label"][:200]
    a, b = (mf.cnn_train(x, y, steps=3) for _ in range(2))
    c = mf.cnn_train(x, y, steps=3, seed=7)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["conv1.weight"], c["conv1.weight"])
    assert not np.array_equal(a["conv1.weight"], mf.cnn_init(20261123)["conv1.weight"])


def test_training_gradients_match_finite_differences():
    r = np.random.default_rng(0)
    p = mf.cnn_init(1)
    for k in p:
        if p[k].ndim == 1 and not k.endswith(("running_mean", "running_var")):
            p[k] = p[k] + r.standard_normal(p[k].shape) * 0.1
    x, y = r.standard_normal((4, 1, 8, 8)), r.integers(0, 10, 4)

    def loss(q):
        return mf.softmax_cross_entropy(mf.cnn_forward(x, q, training=True)[0], y)[0]

    logits, tape = mf.cnn_forward(x, p, training=True)
    grads = mf.cnn_backward(mf.softmax_cross_entropy(logits, y)[1], p, tape)
    trainable = [k for k in p if not k.endswith(("running_mean", "running_var"))]
    assert sorted(grads) == sorted(trainable)
    for k in trainable:
        for _ in range(2):
            i = tuple(int(r.integers(0, s)) for s in p[k].shape)
            q = {n: v.copy() for n, v in p.items()}
            q[k][i] += 1e-6
            up = loss(q)
            q[k][i] -= 2e-6
            fd = (up - loss(q)) / 2e-6
            assert abs(fd - grads[k][i]) <= 1e-5 * max(1e-3, abs(fd)), (k, i, fd, grads[k][i])


@pytest.mark.parametrize("cfg", ["digits_cnn_prune.cfg", "digits_cnn_2of4.cfg", "digits_cnn_int4.cfg"])
def test_configs_compress_the_fixture(tmp_path, cfg):
    out = tmp_path / "out.onnx"
    summary = json.loads(run(MODEL, "--cfg", os.path.join(CONFIGS, cfg), "-o", out, "--json", "--quiet",
                             "--calib", os.path.join(FIXTURES, "digits_train.npz"), "--batch-size", "32").stdout)
    onnx.checker.check_model(str(out), full_check=True)
    test = split("test")
    before, after = accuracy(MODEL, test), accuracy(str(out), test)
    print(f"{cfg}: float {before:.4f}, compressed without retraining {after:.4f}")
    assert len(summary["quantized"]) == 7 and all(q["clips_from"] == "ifmr" for q in summary["quantized"])
    if cfg != "digits_cnn_int4.cfg":
        # the premise of the retraining tests: pruning without fine-tuning loses a lot on this fixture
        assert after < before - 0.10
