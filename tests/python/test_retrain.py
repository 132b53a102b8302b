"""`amct-pipe retrain` on the digits CNN (SEMANTICS §7): compression that costs accuracy is recovered by training, the
written model is a valid QDQ (or AMCT) model whose numbers are its own fake quantization, and a run interrupted after
an epoch and resumed ends bit-identical to an uninterrupted one."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import ortutil
from conftest import FIXTURES, binary, run

MODEL = os.path.join(FIXTURES, "digits_cnn.onnx")
TRAIN = os.path.join(FIXTURES, "digits_train.npz")
TEST = os.path.join(FIXTURES, "digits_test.npz")
CONFIGS = os.path.join(FIXTURES, "configs")
NONE = ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def accuracy(path):
    d = np.load(TEST)
    return float((ortutil.run(str(path), {"image": d["image"]}, NONE)[0].argmax(1) == d["label"]).mean())


def fake_quant_reference(path):
    """The model with every QuantizeLinear → DequantizeLinear pair replaced by its formula in float ops
    (x/s, round, + o, clip, − o, · s) and every weight DequantizeLinear by numpy's (q − 0)·s: the numpy simulation of
    the model's own fake quantization."""
    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    types = {t.name: t.data_type for t in g.initializer}
    ranges = {onnx.TensorProto.INT4: (-8, 7), onnx.TensorProto.INT8: (-128, 127), onnx.TensorProto.UINT8: (0, 255),
              onnx.TensorProto.INT16: (-32768, 32767)}
    producer = {o: n for n in g.node for o in n.output}
    nodes, extra = [], []
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            continue
        if n.op_type != "DequantizeLinear":
            nodes.append(n)
            continue
        s = inits[n.input[1]].astype(np.float32)
        if n.input[0] in inits:  # a weight: integers times the per-axis scale
            q = inits[n.input[0]].astype(np.float32)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if s.size > 1:
                shape[axis] = s.size
            extra.append(numpy_helper.from_array((q * s.reshape(shape)).astype(np.float32), n.output[0]))
            continue
        ql = producer[n.input[0]]
        o = inits[ql.input[2]].astype(np.float32)
        lo, hi = ranges[types[ql.input[2]]]
        p = n.output[0] + "_ref"
        for name, v in (("s", s), ("o", np.float32(o)), ("lo", np.float32(lo)), ("hi", np.float32(hi))):
            extra.append(numpy_helper.from_array(np.array(v, np.float32), f"{p}_{name}"))
        chain = [("Div", [ql.input[0], f"{p}_s"]), ("Round", None), ("Add", [None, f"{p}_o"]),
                 ("Clip", [None, f"{p}_lo", f"{p}_hi"]), ("Sub", [None, f"{p}_o"]), ("Mul", [None, f"{p}_s"])]
        prev = None
        for k, (op, ins) in enumerate(chain):
            ins = [prev] if ins is None else [prev if i is None else i for i in ins]
            out = n.output[0] if k == len(chain) - 1 else f"{p}_{k}"
            nodes.append(helper.make_node(op, ins, [out]))
            prev = out
    del g.node[:]
    g.node.extend(nodes)
    keep = [t for t in g.initializer if t.name not in {e.name for e in extra}]
    del g.initializer[:]
    g.initializer.extend(keep + extra)
    ref = str(path) + ".ref.onnx"
    onnx.save(m, ref)
    return ref


def check_output(path):
    onnx.checker.check_model(str(path), full_check=True)
    ref = fake_quant_reference(path)
    x = np.load(TEST)["image"][:64]
    got, want = ortutil.run(str(path), {"image": x}, NONE)[0], ortutil.run(ref, {"image": x}, NONE)[0]
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The training split less its last 200 samples, and those 200 as validation data (the test split stays unseen)."""
    d = np.load(TRAIN)
    n = len(d["label"])
    folder = tmp_path_factory.mktemp("split")
    np.savez(folder / "train.npz", **{k: d[k][:n - 200] for k in d.files})
    np.savez(folder / "val.npz", **{k: d[k][n - 200:] for k in d.files})
    return folder / "train.npz", folder / "val.npz"


def retrain(cfg, out, *extra, data=TRAIN):
    start = time.perf_counter()
    r = run("retrain", MODEL, "--cfg", os.path.join(CONFIGS, cfg), "--data", data, "-o", out, "--json", "--quiet", *extra)
    return json.loads(r.stdout), time.perf_counter() - start


def compressed_accuracy(cfg, tmp_path):
    out = tmp_path / "compressed.onnx"
    run(MODEL, "--cfg", os.path.join(CONFIGS, cfg), "-o", out, "--quiet", "--calib", TRAIN, "--batch-size", "32")
    return accuracy(out)


FLOAT = None


def float_accuracy():
    global FLOAT
    FLOAT = FLOAT or accuracy(MODEL)
    return FLOAT


@pytest.mark.parametrize("cfg,labels,margin", [
    ("digits_cnn_prune.cfg", True, 0.015),
    ("digits_cnn_2of4.cfg", True, 0.005),
    ("digits_cnn_int4.cfg", True, 0.01),
    ("digits_cnn_prune.cfg", False, 0.02),
], ids=["prune0.5+int8", "2of4+int8", "int4", "prune0.5+int8-distill"])
def test_retrain_recovers_accuracy(tmp_path, split, cfg, labels, margin):
    """Default settings, trained on the training split, the best epoch chosen on held-out validation data, accuracy
    measured on the test split in onnxruntime."""
    out = tmp_path / "out.onnx"
    before = compressed_accuracy(cfg, tmp_path)
    train, val = split
    summary, seconds = retrain(cfg, out, *(["--labels", "label"] if labels else []), "--val", val, data=train)
    after = accuracy(out)
    print(f"{cfg} {'labels' if labels else 'distillation'}: float {float_accuracy():.4f}, compress {before:.4f}, "
          f"retrain {after:.4f} ({seconds:.1f} s)")
    check_output(out)
    assert after >= float_accuracy() - margin
    r = summary["retrain"]
    assert len(r["epochs"]) >= 1 and r["after"]["loss"] < r["before"]["loss"]
    assert all(q["clips_from"] == "retrained" for q in summary["quantized"])


def bn_as_mul_add(path):
    """digits_cnn with every BatchNormalization written out as a Mul and an Add by per-channel constants [1, C, 1, 1]
    (the way some exporters write it): the same function."""
    m = onnx.load(MODEL)
    g = m.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    nodes, extra = [], []
    for n in g.node:
        if n.op_type != "BatchNormalization":
            nodes.append(n)
            continue
        gamma, beta, mean, var = (inits[i].astype(np.float64) for i in n.input[1:5])
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        k = gamma / np.sqrt(var + eps)
        for name, v in ((n.name + "_k", k), (n.name + "_shift", beta - mean * k)):
            extra.append(numpy_helper.from_array(v.astype(np.float32).reshape(1, -1, 1, 1), name))
        nodes.append(helper.make_node("Mul", [n.input[0], n.name + "_k"], [n.output[0] + "_scaled"]))
        nodes.append(helper.make_node("Add", [n.output[0] + "_scaled", n.name + "_shift"], [n.output[0]]))
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep + extra)
    onnx.save(m, path)
    return path


def test_retrain_folds_a_batchnorm_written_as_mul_and_add(tmp_path, split):
    """Retraining folds each Conv's per-channel Mul/Add into the Conv as it folds BatchNormalization: the written model
    has none left after a Conv, runs in onnxruntime as its fake quantization says, and recovers accuracy like the
    BatchNormalization form does (filter pruning cuts the constants first)."""
    model = bn_as_mul_add(tmp_path / "mul_add.onnx")
    d = np.load(TEST)
    want = ortutil.run(MODEL, {"image": d["image"][:64]}, NONE)[0]
    got = ortutil.run(str(model), {"image": d["image"][:64]}, NONE)[0]
    assert np.abs(got - want).max() < 1e-4
    out = tmp_path / "out.onnx"
    train, val = split
    r = run("retrain", model, "--cfg", os.path.join(CONFIGS, "digits_cnn_prune.cfg"), "--data", train, "--val", val,
            "--labels", "label", "-o", out, "--json", "--quiet")
    summary = json.loads(r.stdout)
    assert "fold-affine: 6 Conv+Mul(+Add) per-channel affines folded" in summary["passes"], summary["passes"]
    written = onnx.load(str(out)).graph
    producer = {o: n for n in written.node for o in n.output}
    after_conv = [n.op_type for n in written.node
                  if n.op_type in ("Mul", "Add") and any(producer.get(i) is not None and producer[i].op_type == "Conv"
                                                         for i in n.input)]
    assert after_conv == ["Add", "Add"]  # the two residual Adds; no affine is left
    check_output(out)
    assert accuracy(out) >= float_accuracy() - 0.015


def test_retrain_amct_layout_and_record(tmp_path):
    out = tmp_path / "out.onnx"
    record = tmp_path / "r.txt"
    retrain("digits_cnn_int4.cfg", out, "--labels", "label", "--epochs", "1", "--format", "amct", "--record", record)
    fake = tmp_path / "out_fake_quant_model.onnx"
    onnx.checker.check_model(str(fake), full_check=True)
    assert accuracy(fake) >= float_accuracy() - 0.03
    assert "scale_d" in record.read_text()


def test_interrupted_run_resumes_to_the_same_parameters(tmp_path):
    cfg = os.path.join(CONFIGS, "digits_cnn_2of4.cfg")
    common = ["retrain", MODEL, "--cfg", cfg, "--data", TRAIN, "--labels", "label", "--epochs", "3", "--batch-size", "8",
              "--quiet"]
    run(*common, "-o", tmp_path / "whole.onnx")
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen([binary(), *map(str, common), "-o", str(tmp_path / "cut.onnx"), "--checkpoint", str(ckpt)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (ckpt / "checkpoint.npz").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    proc.wait()
    assert (ckpt / "checkpoint.npz").exists()
    assert not (tmp_path / "cut.onnx").exists() or proc.returncode == 0
    summary = json.loads(run(*common, "-o", tmp_path / "resumed.onnx", "--resume", ckpt, "--json").stdout)
    assert summary["retrain"]["resumed_from_epoch"] >= 1
    a, b = onnx.load(str(tmp_path / "whole.onnx")), onnx.load(str(tmp_path / "resumed.onnx"))
    ia = {t.name: numpy_helper.to_array(t) for t in a.graph.initializer}
    ib = {t.name: numpy_helper.to_array(t) for t in b.graph.initializer}
    assert ia.keys() == ib.keys()
    for k in ia:
        assert np.array_equal(ia[k], ib[k]), k


def test_bad_retrain_input_is_a_clean_error(tmp_path):
    r = run("retrain", MODEL, "--cfg", os.path.join(CONFIGS, "digits_cnn_int4.cfg"), "--data", TRAIN, "--labels", "nope",
            "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1 and "amct-pipe: error:" in r.stderr and "nope" in r.stderr
    assert not (tmp_path / "o.onnx").exists()
    r = run("retrain", MODEL, "--cfg", os.path.join(CONFIGS, "digits_cnn_int4.cfg"), "--data", TRAIN, "--resume",
            tmp_path / "missing", "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1 and "amct-pipe: error:" in r.stderr
