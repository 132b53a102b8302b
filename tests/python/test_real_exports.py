"""Models as other people's exporters write them (issue 17): weights in Constant nodes (Paddle), a batch fixed at 1
(torchvision-style exports), and retraining that refuses what it cannot train before any calibration.

The PaddleOCR direction classifier comes as shipped inside the public `rapidocr_onnxruntime` wheel (fetched from PyPI
by bench/ocr.py into bench-work/ocr once)."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ocr
import ortutil
from conftest import FIXTURES, run

MODEL = os.path.join(FIXTURES, "digits_cnn.onnx")
TRAIN = os.path.join(FIXTURES, "digits_train.npz")
CONFIGS = os.path.join(FIXTURES, "configs")


def fix_batch(model, batch=1):
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.shape.dim[0].ClearField("dim_param")
        v.type.tensor_type.shape.dim[0].dim_value = batch
    return model


@pytest.fixture
def batch1(tmp_path):
    """The digits CNN as an exporter with a fixed batch of 1 writes it."""
    path = tmp_path / "digits_b1.onnx"
    onnx.save(fix_batch(onnx.load(MODEL)), str(path))
    return path


@pytest.fixture
def images(tmp_path):
    path = tmp_path / "x8.npz"
    np.savez(path, image=np.load(TRAIN)["image"][:8])
    return path


def test_a_batch_one_export_runs_eight_samples_in_order(batch1, images, tmp_path):
    run("run", batch1, "--inputs", images, "-o", tmp_path / "y.npz", "--batch-size", "8")
    got = np.load(tmp_path / "y.npz")["logits"]
    x = np.load(images)["image"]
    want = np.concatenate([ortutil.run(str(batch1), {"image": x[i:i + 1]})[0] for i in range(8)])
    assert got.shape == (8, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_batch_one_export_retrains_by_distillation(batch1, tmp_path):
    out = tmp_path / "out.onnx"
    r = run("retrain", batch1, "--cfg", os.path.join(CONFIGS, "digits_cnn_prune.cfg"), "--data", TRAIN,
            "--batch-size", "16", "--steps", "6", "-o", out, "--json", "--quiet")
    summary = json.loads(r.stdout)["retrain"]
    assert summary["steps"] == 6 and summary["loss"].startswith("distillation")
    assert "MSE / teacher variance" in summary["loss"], "logits without a final Softmax: normalised MSE"
    onnx.checker.check_model(str(out), full_check=True)
    m = onnx.load(str(out))
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1, "the written model keeps its own batch"
    x = np.load(TRAIN)["image"][:1]
    assert ortutil.run(str(out), {"image": x})[0].shape == (1, 10)


def test_a_reshape_that_bakes_the_batch_in_is_named(batch1, images, tmp_path):
    m = onnx.load(str(batch1))
    flatten = next(n for n in m.graph.node if n.op_type == "Flatten")
    flatten.op_type, flatten.name = "Reshape", "baked_reshape"
    del flatten.attribute[:]
    flatten.input.append("to_1_by_k")
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), "to_1_by_k"))
    path = tmp_path / "baked.onnx"
    onnx.save(m, str(path))
    r = run("run", path, "--inputs", images, "-o", tmp_path / "y.npz", "--batch-size", "8", check=False)
    assert r.returncode == 1, r.stderr
    assert "baked_reshape" in r.stderr and "--batch-size 1" in r.stderr and "fixes its batch at 1" in r.stderr
    assert not (tmp_path / "y.npz").exists()
    run("run", path, "--inputs", images, "-o", tmp_path / "y1.npz")  # batches of the model's 1


def write_cfg(tmp_path, batch_num):
    cfg = tmp_path / "ifmr.cfg"
    cfg.write_text(f"batch_num: {batch_num}\nretrain_data_quant_config {{ ulq_quantize {{ dst_type: INT8 }} }}\n"
                   "retrain_weight_quant_config { arq_retrain { channel_wise: true } }\n")
    return cfg


def test_an_op_without_gradient_is_refused_before_calibration(tmp_path):
    """x → Conv → Greater(0) → Cast → GlobalAveragePool: Greater has no gradient between the conv weight and the loss.
    batch_num 1000 asks for more samples than the data holds: calibration would refuse that first, had it run."""
    w = np.random.default_rng(0).normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Greater", ["c", "zero"], ["positive"], name="is_positive"),
             helper.make_node("Cast", ["positive"], ["mask"], to=TensorProto.FLOAT),
             helper.make_node("GlobalAveragePool", ["mask"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, 1])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(0), "zero")])
    path = tmp_path / "greater.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    data = tmp_path / "x.npz"
    np.savez(data, x=np.random.default_rng(1).normal(size=(16, 1, 8, 8)).astype(np.float32))
    r = run("retrain", path, "--cfg", write_cfg(tmp_path, 1000), "--data", data, "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1
    assert "is_positive" in r.stderr and "Greater" in r.stderr and "no gradient" in r.stderr, r.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_a_label_that_is_no_class_index_is_refused_before_calibration(tmp_path):
    d = np.load(TRAIN)
    labels = d["label"].copy()
    labels[5] = 10
    data = tmp_path / "bad_labels.npz"
    np.savez(data, image=d["image"], label=labels)
    r = run("retrain", MODEL, "--cfg", write_cfg(tmp_path, 100000), "--data", data, "--labels", "label",
            "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1
    assert "label 10 is not a class index of the model's 10 classes" in r.stderr, r.stderr


def test_paddle_classifier_as_shipped_loads_and_distills(tmp_path):
    """Every weight of the Paddle export is a Constant node: after loading they are initializers, and retraining
    takes the KL divergence on the logits before its Softmax → Identity output."""
    model = ocr.fetch()["cls"]
    shipped = onnx.load(model)
    assert not shipped.graph.initializer and sum(n.op_type == "Constant" for n in shipped.graph.node) > 300
    converted = tmp_path / "cls.onnx"
    run("convert", model, "-o", converted)
    m = onnx.load(str(converted))
    assert not [n for n in m.graph.node if n.op_type == "Constant"] and len(m.graph.initializer) > 300
    data = tmp_path / "lines.npz"
    ocr.make("cls", str(data), 4, 0)
    x = np.load(data)["x"]
    np.testing.assert_allclose(ortutil.run(str(converted), {"x": x})[0], ortutil.run(model, {"x": x})[0], atol=1e-6)
    out = tmp_path / "cls_int8.onnx"
    r = run("retrain", model, "--cfg", write_cfg(tmp_path, 1), "--data", data, "--batch-size", "4", "--steps", "1",
            "-o", out, "--json", "--quiet")
    loss = json.loads(r.stdout)["retrain"]["loss"]
    assert "KL divergence over softmax(2 classes)" in loss, loss
    onnx.checker.check_model(str(out), full_check=True)
    assert ortutil.run(str(out), {"x": x}, ocr.BASIC)[0].shape == (4, 2)
