"""Calibration: the executor matches onnxruntime, IFMR clips equal numpy's on the same activations, calibration
data is validated, and IFMR-calibrated INT8 keeps digits accuracy."""
import glob
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import models
import ortutil
import reference
from conftest import FIXTURES, run

CONFIGS = os.path.join(FIXTURES, "configs")


def executor_vs_ort(src, tmp_path, symbolic=2):
    feeds = ortutil.inputs_for(src, symbolic=symbolic)
    np.savez(tmp_path / "in.npz", **feeds)
    run("run", src, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz")
    got = np.load(tmp_path / "out.npz")
    names = [o.name for o in onnx.load(src, load_external_data=False).graph.output]
    for name, want in zip(names, ortutil.run(src, feeds)):
        if want.dtype.kind != "f":
            continue
        assert got[name].shape == want.shape
        assert np.abs(got[name] - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max())), name


RUNNABLE = [p for p in sorted(glob.glob(os.path.join(FIXTURES, "*.onnx"))) if "function_and_sequence" not in p]


@pytest.mark.parametrize("src", RUNNABLE, ids=os.path.basename)
def test_executor_matches_onnxruntime_on_fixtures(src, tmp_path):
    executor_vs_ort(src, tmp_path)


@pytest.mark.parametrize("make", [lambda: models.resnet50(batch="N", image=64), models.mobilenet_v2, models.densenet,
                                  models.transformer_encoder], ids=["resnet50", "mobilenet_v2", "densenet", "transformer"])
def test_executor_matches_onnxruntime_on_generated_models(make, tmp_path):
    src = str(tmp_path / "m.onnx")
    onnx.save(make(), src)
    executor_vs_ort(src, tmp_path)


def test_integer_shape_arithmetic_is_exact(tmp_path):
    """Shape → Mul/Add/Div on int64 stays exact past 2^24 (a float path would round 16777217)."""
    from onnx import TensorProto, helper
    big = numpy_helper_int64 = onnx.numpy_helper.from_array(np.array([16777217, 3], np.int64), "big")
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Mul", ["s", "big"], ["m"]),
             helper.make_node("Add", ["m", "big"], ["a"]), helper.make_node("Div", ["a", "s"], ["d"]),
             helper.make_node("Cast", ["d"], ["out"], to=TensorProto.INT64)]
    g = helper.make_graph(nodes, "ints", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("out", TensorProto.INT64, [2])], initializer=[big])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    src = str(tmp_path / "ints.onnx")
    onnx.save(m, src)
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 3), np.float32))
    run("run", src, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz")
    want = ortutil.run(src, {"x": np.zeros((2, 3), np.float32)})[0]
    assert np.array_equal(np.load(tmp_path / "out.npz")["out"], want)
    assert want[0] == (2 * 16777217 + 16777217) // 2


def test_unsupported_op_is_named_before_work(tmp_path):
    src = os.path.join(FIXTURES, "function_and_sequence.onnx")
    np.savez(tmp_path / "in.npz", x=np.ones((2, 4), np.float32))
    r = run("run", src, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz", check=False)
    assert r.returncode != 0 and "node 'scaled_relu': op custom.fns.ScaledRelu (opset 13)" in r.stderr
    assert not (tmp_path / "out.npz").exists()


def layer_inputs_by_ort(src, names, feeds):
    """The values feeding the named nodes, computed by onnxruntime (as extra graph outputs)."""
    m = onnx.load(src)
    wanted = [n.input[0] for n in m.graph.node if n.name in names]
    for v in wanted:
        m.graph.output.append(onnx.helper.make_tensor_value_info(v, onnx.TensorProto.FLOAT, None))
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    out = s.run(wanted, feeds)
    return {n.name: out[wanted.index(n.input[0])] for n in m.graph.node if n.name in names}


def parse_record(text):
    entries, key = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("key:"):
            key = line.split('"')[1]
            entries[key] = {}
        elif key and ":" in line and not line.endswith("{"):
            k, v = line.split(":", 1)
            entries[key][k.strip()] = v.strip()
    return entries


@pytest.mark.parametrize("model,bits", [("conv_bn_relu.onnx", 8), ("residual.onnx", 8), ("depthwise.onnx", 4), ("matmul_head.onnx", 16)])
def test_ifmr_clips_equal_numpy(model, bits, tmp_path):
    src = os.path.join(FIXTURES, model)
    rng = np.random.default_rng(7)
    inp = onnx.load(src).graph.input[0]
    shape = [d.dim_value or 3 for d in inp.type.tensor_type.shape.dim]
    shape[0] = 6
    data = rng.standard_normal(shape).astype(np.float32)
    np.savez_compressed(tmp_path / "calib.npz", **{inp.name: data})
    cfg = tmp_path / "ifmr.cfg"
    dst = {4: "INT4", 8: "INT8", 16: "INT16"}[bits]
    cfg.write_text(f"batch_num: 2\nretrain_data_quant_config {{ ulq_quantize {{ dst_type: {dst} }} }}\n")
    out = tmp_path / "q.onnx"
    summary = json.loads(run(src, "--cfg", cfg, "-o", out, "--calib", tmp_path / "calib.npz", "--batch-size", "3",
                             "--record", tmp_path / "r.txt", "--json").stdout)
    assert "2 batches of 3" in summary["calibration"]
    record = parse_record((tmp_path / "r.txt").read_text())
    plan = {l["name"]: l for l in json.loads(run("plan", src, "--cfg", cfg, "--json").stdout)["layers"]}
    acts = layer_inputs_by_ort(src, set(record), {inp.name: data})  # the same 6 samples: 2 batches × 3
    for layer, entry in record.items():
        want_min, want_max = reference.ifmr(acts[layer], bits)
        got_max = float(entry["clip_max"])
        assert abs(got_max - want_max) <= 1e-6 * abs(want_max), (layer, got_max, want_max)
        if plan[layer]["quant"]["act"]["fixed_min"]:
            assert float(entry["clip_min"]) == 0.0
        else:
            assert abs(float(entry["clip_min"]) - want_min) <= 1e-6 * abs(want_min), layer


def test_digits_int8_with_ifmr_keeps_accuracy(tmp_path):
    src = os.path.join(FIXTURES, "digits_mlp.onnx")
    out = tmp_path / "digits.onnx"
    run(src, "--cfg", os.path.join(CONFIGS, "digits_ifmr.cfg"), "-o", out, "--calib", os.path.join(FIXTURES, "digits_test.npz"),
        "--batch-size", "64")
    d = np.load(os.path.join(FIXTURES, "digits_test.npz"))
    accs = [float((ortutil.run(p, {"input": d["input"]})[0].argmax(1) == d["label"]).mean()) for p in (src, str(out))]
    print(f"digits IFMR INT8: float {accs[0]:.4f}, quantized {accs[1]:.4f}")
    assert accs[1] >= accs[0] - 0.005


def calib_fails(tmp_path, arrays, expected, extra=(), model="digits_mlp.onnx", npy=False):
    src = os.path.join(FIXTURES, model)
    path = tmp_path / ("c.npy" if npy else "c.npz")
    if npy:
        np.save(path, arrays)
    else:
        np.savez(path, **arrays)
    out = tmp_path / "q.onnx"
    r = run(src, "--cfg", os.path.join(CONFIGS, "digits_ifmr.cfg"), "-o", out, "--calib", path, *extra, check=False)
    assert r.returncode != 0 and expected in r.stderr, r.stderr
    assert not out.exists()


def test_calibration_data_errors(tmp_path):
    calib_fails(tmp_path, {"input": np.zeros((300, 63), np.float32)}, "needs dimension 1 = 64")
    calib_fails(tmp_path, {"x": np.zeros((300, 64), np.float32)}, "no array named 'input'")
    calib_fails(tmp_path, {"input": np.zeros((10, 64), np.float32)}, "has 10 samples; batch_num 4 × 64 samples per batch needs 256",
                extra=("--batch-size", "64"))
    calib_fails(tmp_path, {"input": np.zeros((300, 8, 8), np.float32)}, "has rank 2")
    calib_fails(tmp_path, np.zeros((300, 64), np.uint8), "dtype |u1 is not read", npy=True)


def test_npy_and_random_calibration(tmp_path):
    src = os.path.join(FIXTURES, "digits_mlp.onnx")
    d = np.load(os.path.join(FIXTURES, "digits_test.npz"))
    np.save(tmp_path / "x.npy", d["input"])
    run(src, "--cfg", os.path.join(CONFIGS, "digits_ifmr.cfg"), "-o", tmp_path / "a.onnx", "--calib", tmp_path / "x.npy", "--batch-size", "8")
    summary = json.loads(run(src, "--cfg", os.path.join(CONFIGS, "digits_ifmr.cfg"), "-o", tmp_path / "b.onnx", "--calib", "random", "--json").stdout)
    assert "random" in summary["calibration"] and any("random inputs" in w for w in summary["warnings"])
    onnx.checker.check_model(str(tmp_path / "b.onnx"), full_check=True)
