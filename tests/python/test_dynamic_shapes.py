"""Dynamic dimensions as real exporters write them: Paddle's `dim_value: -1` batch and symbolic H/W. Calibration from an
.npz and from `--calib random --input-shape x:1,3,48,320`, the clips checked against numpy's IFMR over onnxruntime's
activations; `--input-shape` errors name what to change."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import reference
from conftest import run
from test_calibration import layer_inputs_by_ort, parse_record

IFMR_CFG = "batch_num: 2\nretrain_data_quant_config { ulq_quantize { } }\nretrain_weight_quant_config { arq_retrain { } }\n"


def paddle_model(batch=-1):
    """x[-1, 3, h, w] → Conv 3×3 → Relu → Conv 1×1 → y[-1, 4, h, w]; the intermediate's value_info also says -1."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "conv1.w"),
             numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "conv1.b"),
             numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32), "conv2.w")]
    nodes = [helper.make_node("Conv", ["x", "conv1.w", "conv1.b"], ["c1"], name="conv2d_0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu_0"),
             helper.make_node("Conv", ["r1", "conv2.w"], ["y"], name="conv2d_1")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, "h", "w"])
    graph = helper.make_graph(nodes, "paddle_like", [x], [y], initializer=inits,
                              value_info=[helper.make_tensor_value_info("r1", TensorProto.FLOAT, [-1, 8, -1, -1])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="PaddlePaddle")
    m.ir_version = 6
    return m


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "paddle.onnx"
    onnx.save(paddle_model(), path)
    cfg = tmp_path / "ifmr.cfg"
    cfg.write_text(IFMR_CFG)
    return path, cfg


def check_clips(src, record_path, data):
    record = parse_record(record_path.read_text())
    assert set(record) == {"conv2d_0", "conv2d_1"}
    acts = layer_inputs_by_ort(str(src), set(record), {"x": data})
    for layer, entry in record.items():
        want_min, want_max = reference.ifmr(acts[layer], 8)
        assert abs(float(entry["clip_max"]) - want_max) <= 1e-6 * abs(want_max), (layer, entry, want_max)
        if layer == "conv2d_0":  # the input does not come from a Relu: clip_min is IFMR's
            assert abs(float(entry["clip_min"]) - want_min) <= 1e-6 * abs(want_min), (layer, entry, want_min)


def test_minus_one_batch_and_symbolic_hw_calibrate_from_npz(model_path, tmp_path):
    src, cfg = model_path
    data = np.random.default_rng(5).standard_normal((4, 3, 48, 320)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=data)
    out = tmp_path / "q.onnx"
    summary = json.loads(run(src, "--cfg", cfg, "--calib", tmp_path / "calib.npz", "--batch-size", "2", "-o", out,
                             "--record", tmp_path / "r.txt", "--json").stdout)
    assert "2 batches of 2" in summary["calibration"]
    check_clips(src, tmp_path / "r.txt", data)  # the same 4 samples: 2 batches × 2
    onnx.checker.check_model(str(out), full_check=True)
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert s.run(None, {"x": data[:1]})[0].shape == (1, 4, 48, 320)


def test_random_calibration_with_input_shape(model_path, tmp_path):
    src, cfg = model_path
    out = tmp_path / "q.onnx"
    summary = json.loads(run(src, "--cfg", cfg, "--calib", "random", "--input-shape", "x:1,3,48,320", "-o", out,
                             "--json").stdout)
    assert "2 batches of 1" in summary["calibration"] and "random" in summary["calibration"]
    # The batch given by --input-shape wins over --batch-size, and the random data has that many samples per batch.
    summary = json.loads(run(src, "--cfg", cfg, "--calib", "random", "--input-shape", "x:3,3,16,32", "--batch-size", "5",
                             "-o", out, "--json").stdout)
    assert "2 batches of 3" in summary["calibration"]
    # The shapes are for calibration: the written model keeps its own dynamic input.
    dims = [d.dim_value or d.dim_param for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [-1, 3, "h", "w"]
    onnx.checker.check_model(str(out), full_check=True)


def test_random_calibration_without_shape_says_how(model_path, tmp_path):
    src, cfg = model_path
    r = run(src, "--cfg", cfg, "--calib", "random", "-o", tmp_path / "q.onnx", check=False)
    assert r.returncode == 1 and "--input-shape x:" in r.stderr, r.stderr
    assert not (tmp_path / "q.onnx").exists()


def test_npz_fixed_by_input_shape(model_path, tmp_path):
    """--input-shape fixes the batch to 2, so batches take 2 samples with no --batch-size; a disagreeing H is refused."""
    src, cfg = model_path
    data = np.random.default_rng(9).standard_normal((4, 3, 8, 16)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=data)
    summary = json.loads(run(src, "--cfg", cfg, "--calib", tmp_path / "calib.npz", "--input-shape", "x:2,3,8,16",
                             "-o", tmp_path / "q.onnx", "--record", tmp_path / "r.txt", "--json").stdout)
    assert "2 batches of 2" in summary["calibration"]
    check_clips(src, tmp_path / "r.txt", data)
    r = run(src, "--cfg", cfg, "--calib", tmp_path / "calib.npz", "--input-shape", "x:2,3,9,16", "-o", tmp_path / "z.onnx",
            check=False)
    assert r.returncode == 1 and "needs dimension 2 = 9" in r.stderr, r.stderr


def test_run_and_plan_take_input_shape(model_path, tmp_path):
    src, cfg = model_path
    data = np.random.default_rng(2).standard_normal((1, 3, 6, 10)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=data)
    run("run", src, "--inputs", tmp_path / "x.npz", "--input-shape", "x:1,3,6,10", "-o", tmp_path / "y.npz")
    want = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": data})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["y"], want, rtol=1e-5, atol=1e-5)
    plan = json.loads(run("plan", src, "--cfg", cfg, "--input-shape", "x:1,3,6,10", "--json").stdout)
    assert [l["name"] for l in plan["layers"]] == ["conv2d_0", "conv2d_1"]


@pytest.mark.parametrize("shape,message", [
    ("y:1,3,48,320", "names 'y', which is not an input of the model (inputs: x)"),
    ("x:1,3,48", "gives 3 dimensions; the model's input has rank 4 ([-1, 3, h, w])"),
    ("x:1,4,48,320", "gives dimension 1 = 4; the model fixes it to 3"),
    ("x:1,3,0,320", "dimension '0' is not a positive integer"),
    ("x:1,3,-48,320", "dimension '-48' is not a positive integer"),
    ("x1,3,48,320", "write NAME:D0,D1,..."),
])
def test_input_shape_errors(model_path, tmp_path, shape, message):
    src, cfg = model_path
    for argv in (["plan", src, "--cfg", cfg], [src, "--cfg", cfg, "--calib", "random", "-o", tmp_path / "q.onnx"]):
        r = run(*argv, "--input-shape", shape, check=False)
        assert r.returncode == 1, r.stderr
        assert "amct-pipe: error:" in r.stderr and message in r.stderr, r.stderr
    assert not (tmp_path / "q.onnx").exists()


def test_input_shape_named_twice(model_path):
    src, cfg = model_path
    r = run("plan", src, "--cfg", cfg, "--input-shape", "x:1,3,8,8", "--input-shape", "x:1,3,8,8", check=False)
    assert r.returncode == 1 and "names input 'x' twice" in r.stderr, r.stderr


def test_negative_batch_size_is_a_clear_error(model_path, tmp_path):
    src, cfg = model_path
    r = run(src, "--cfg", cfg, "--calib", "random", "--batch-size", "-1", "-o", tmp_path / "q.onnx", check=False)
    assert r.returncode != 0 and "--batch-size must be at least 1 (it is -1)" in r.stderr, r.stderr
    assert "Missing value" not in r.stderr


def test_calibration_larger_than_memory_is_refused(model_path, tmp_path):
    src, _ = model_path
    cfg = tmp_path / "huge.cfg"
    cfg.write_text(IFMR_CFG.replace("batch_num: 2", "batch_num: 2147483648"))
    r = run(src, "--cfg", cfg, "--calib", "random", "--input-shape", "x:1,3,48,320", "-o", tmp_path / "q.onnx", check=False)
    assert r.returncode == 1 and "of memory is available" in r.stderr, r.stderr
    data = np.zeros((3, 3, 4, 4), np.float32)
    np.savez(tmp_path / "c.npz", x=data)
    r = run(src, "--cfg", cfg, "--calib", tmp_path / "c.npz", "-o", tmp_path / "q.onnx", check=False)
    assert r.returncode == 1 and "array 'x' has 3 samples; batch_num 2147483648" in r.stderr, r.stderr
    assert not (tmp_path / "q.onnx").exists()
