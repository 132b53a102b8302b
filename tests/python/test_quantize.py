"""Fake quantization (QDQ): every output passes the checker, runs in onnxruntime, and equals a float-only reference
built from numpy formulas (reference.py) within 1e-5; integer weights, scales and offsets are bit-exact."""
import glob
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import ortutil
import reference
from conftest import FIXTURES, run

CONFIGS = os.path.join(FIXTURES, "configs")
BASIC = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
ALL = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
NONE = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

GENERIC_INT8 = """
retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 4.0 clip_min: -4.0 } } }
retrain_weight_quant_config { arq_retrain { channel_wise: true } }
"""


def compress(src, cfg, out, *extra):
    result = run(src, "--cfg", cfg, "-o", out, "--json", *extra)
    plan = {l["name"]: l for l in json.loads(run("plan", src, "--cfg", cfg, "--json").stdout)["layers"]}
    return json.loads(result.stdout), plan


def check_against_reference(src, out, plan, force_fp16=False, close_levels=(BASIC, ALL)):
    """Exact (1e-5 of the output scale) with the graph run as written (ORT_DISABLE_ALL). Optimisation levels rewrite
    it (constant folding, Conv+Mul fusion, QDQ → QLinearConv integer kernels), which moves float32 rounding and can
    flip a value sitting on a rounding tie by one quantization step: there the output must agree closely on average."""
    onnx.checker.check_model(str(out), full_check=True)
    ref, expected = reference.reference_model(onnx.load(src), plan, force_fp16)
    ref_path = str(out) + ".ref.onnx"
    onnx.save(ref, ref_path)
    feeds = ortutil.inputs_for(src)
    want = [w for w in ortutil.run(ref_path, feeds, NONE)]
    numeric = [i for i, w in enumerate(want) if w.dtype.kind == "f"]
    got = ortutil.run(str(out), feeds, NONE)
    for i in numeric:
        a, b = got[i], want[i]
        scale = max(1.0, float(np.abs(b).max()))
        assert np.abs(a - b).max() <= 1e-5 * scale, f"{out} as written: max diff {np.abs(a - b).max()}"
    for level in close_levels:
        got = ortutil.run(str(out), feeds, level)
        for i in numeric:
            a, b = got[i], want[i]
            assert np.abs(a - b).mean() <= 0.02 * max(1.0, float(np.abs(b).max())), f"{out} at {level}"
    return expected


def check_initializers(out, expected):
    """The integers, weight scales and activation (scale, offset) in the file equal numpy's."""
    m = onnx.load(str(out))
    inits = {t.name: t for t in m.graph.initializer}
    by_output = {n.output[0]: n for n in m.graph.node}
    for node in m.graph.node:
        if node.name not in expected:
            continue
        e = expected[node.name]
        dq_w = by_output[node.input[1]]
        assert dq_w.op_type == "DequantizeLinear"
        q = numpy_helper.to_array(inits[dq_w.input[0]])
        s_w = numpy_helper.to_array(inits[dq_w.input[1]]).reshape(-1)
        view, _ = reference.channel_view(q.astype(np.float32), node.op_type,
                                         any(a.name == "transB" and a.i == 1 for a in node.attribute), 1)
        assert np.array_equal(view.astype(np.int8), e["q"]), node.name
        assert np.array_equal(s_w.view(np.uint32), e["scale_w"].view(np.uint32)), node.name
        dq_x = by_output[node.input[0]]
        s_d = numpy_helper.to_array(inits[dq_x.input[1]])
        o_d = numpy_helper.to_array(inits[dq_x.input[2]])
        assert s_d.dtype == np.float32 and s_d.view(np.uint32) == np.float32(e["scale_d"]).view(np.uint32), node.name
        assert int(o_d) == e["offset_d"], node.name


MODELS = [p for p in sorted(glob.glob(os.path.join(FIXTURES, "*.onnx"))) if "function_and_sequence" not in p]


@pytest.mark.parametrize("src", MODELS, ids=os.path.basename)
def test_generic_int8_on_every_fixture(src, tmp_path):
    cfg = tmp_path / "int8.cfg"
    cfg.write_text(GENERIC_INT8)
    out = tmp_path / "q.onnx"
    summary, plan = compress(src, cfg, out)
    assert summary["quantized"], "nothing was quantized"
    expected = check_against_reference(src, out, plan)
    check_initializers(out, expected)
    # A control: quantization changed the numbers.
    feeds = ortutil.inputs_for(src)
    assert any(not np.array_equal(a, b) for a, b in zip(ortutil.run(src, feeds), ortutil.run(str(out), feeds)))


def test_quant_cfg_on_residual(tmp_path):
    src = os.path.join(FIXTURES, "residual.onnx")
    out = tmp_path / "residual_q.onnx"
    summary, plan = compress(src, os.path.join(CONFIGS, "quant.cfg"), out, "--record", tmp_path / "r.txt")
    expected = check_against_reference(src, out, plan, force_fp16=True)
    check_initializers(out, expected)
    # FORCE_FP16_QUANT: every activation scale in the file is exactly a float16.
    m = onnx.load(str(out))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    act_scales = [inits[n.input[1]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
    assert act_scales
    for s in act_scales:
        assert np.float32(np.float16(s)) == s
    # The INT4 layer made the opset 21 and stored INT4 weights.
    assert m.opset_import[0].version == 21 and m.ir_version >= 10
    assert any(t.data_type == onnx.TensorProto.INT4 for t in m.graph.initializer)
    # Skipped layers stay float, with the reason in the summary.
    assert {f["layer"] for f in summary["float"]} == {"/conv1/Conv", "/layer1/layer1.1/conv2/Conv"}
    record = (tmp_path / "r.txt").read_text()
    assert record.count("record {") == 4 and 'key: "/layer1/layer1.0/conv1/Conv"' in record
    assert os.path.getsize(out) < os.path.getsize(src)


def test_without_fp16_mode_scales_are_plain_float32(tmp_path):
    src = os.path.join(FIXTURES, "conv_bn_relu.onnx")
    cfg = tmp_path / "c.cfg"
    cfg.write_text("retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 3.1 clip_min: -2.7 } } }\n")
    out = tmp_path / "q.onnx"
    _, plan = compress(src, cfg, out)
    expected = check_against_reference(src, out, plan)
    s, o = reference.asymmetric(-2.7, 3.1, 8)
    assert expected["/conv1/Conv"]["scale_d"] == s and expected["/conv1/Conv"]["offset_d"] == o
    assert np.float32(np.float16(s)) != s  # so the fp16 test above is not vacuous


def test_caffe_dialect_config(tmp_path):
    src = os.path.join(FIXTURES, "conv_bn_relu.onnx")
    out = tmp_path / "q.onnx"
    summary, plan = compress(src, os.path.join(CONFIGS, "caffe_quant.cfg"), out)
    check_initializers(out, check_against_reference(src, out, plan))
    assert [f["layer"] for f in summary["float"]] == ["/fc/Gemm"]


def test_int4_activations(tmp_path):
    src = os.path.join(FIXTURES, "conv_bn_relu.onnx")
    cfg = tmp_path / "int4.cfg"
    cfg.write_text("""
retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 4.0 clip_min: -4.0 } dst_type: INT4 } }
retrain_weight_quant_config { arq_retrain { channel_wise: true dst_type: INT4 } }
""")
    out = tmp_path / "q.onnx"
    summary, plan = compress(src, cfg, out)
    assert "ORT_ENABLE_BASIC" in summary["runtime"] and "INVALID_GRAPH" in summary["runtime"]
    check_against_reference(src, out, plan, close_levels=(BASIC,))
    # The default level: older onnxruntime fuses QDQ into QLinearConv there and refuses 4-bit (INVALID_GRAPH), which
    # the summary warns about; onnxruntime 1.32 (pinned here) loads it. Either way it never runs silently wrong.
    try:
        got = ortutil.run(str(out), ortutil.inputs_for(src), ALL)
    except Exception as e:
        assert "INVALID_GRAPH" in str(e), e
    else:
        ref = ortutil.run(str(out) + ".ref.onnx", ortutil.inputs_for(src), NONE)
        assert np.abs(got[0] - ref[0]).mean() <= 0.02 * max(1.0, float(np.abs(ref[0]).max()))


def test_int16_activations(tmp_path):
    src = os.path.join(FIXTURES, "gap_gemm.onnx")
    cfg = tmp_path / "int16.cfg"
    cfg.write_text("retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 4.0 clip_min: -4.0 } dst_type: INT16 } }\n")
    out = tmp_path / "q.onnx"
    _, plan = compress(src, cfg, out)
    expected = check_against_reference(src, out, plan, close_levels=(BASIC,))
    check_initializers(out, expected)


def accuracy(path):
    d = np.load(os.path.join(FIXTURES, "digits_test.npz"))
    y = ortutil.run(path, {"input": d["input"]})[0]
    return float((y.argmax(1) == d["label"]).mean())


def test_digits_accuracy(tmp_path):
    src = os.path.join(FIXTURES, "digits_mlp.onnx")
    base = accuracy(src)
    for name, allowed in (("digits_int8.cfg", 0.005), ("digits_int4w.cfg", 0.02)):
        out = tmp_path / name.replace(".cfg", ".onnx")
        compress(src, os.path.join(CONFIGS, name), out)
        acc = accuracy(str(out))
        print(f"{name}: float {base:.4f}, quantized {acc:.4f}")
        assert acc >= base - allowed, f"{name}: {acc} vs float {base}"


def test_ifmr_layers_without_calibration_are_named(tmp_path):
    src = os.path.join(FIXTURES, "residual.onnx")
    out = tmp_path / "q.onnx"
    result = run(src, "--cfg", os.path.join(CONFIGS, "compressed1.cfg"), "-o", out, check=False)
    assert result.returncode != 0 and not out.exists()
    cfg = tmp_path / "ifmr.cfg"
    cfg.write_text("retrain_data_quant_config { ulq_quantize { } }\n")
    result = run(src, "--cfg", cfg, "-o", out, check=False)
    assert result.returncode != 0 and not out.exists()
    assert "need activation clips from IFMR" in result.stderr and "/layer1/layer1.0/conv1/Conv" in result.stderr


def test_opset_11_model_is_converted(tmp_path):
    """A model at opset 11 with Unsqueeze/ReduceMean axes attributes is raised to 13 with axes as inputs."""
    from onnx import helper, TensorProto
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.weight")
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["c"], ["r"], name="/mean", axes=[2, 3], keepdims=0),
             helper.make_node("Unsqueeze", ["r"], ["u"], name="/unsq", axes=[1]),
             helper.make_node("Squeeze", ["u"], ["q"], name="/sq", axes=[1]),
             helper.make_node("Split", ["q"], ["q0", "q1"], name="/split", axis=1, split=[1, 3]),
             helper.make_node("ReduceSum", ["q1"], ["q1s"], name="/rsum", axes=[1], keepdims=1),
             helper.make_node("Concat", ["q0", "q1s"], ["y"], name="/cat", axis=1)]
    g = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 6
    src = tmp_path / "old.onnx"
    onnx.save(m, str(src))
    cfg = tmp_path / "c.cfg"
    cfg.write_text(GENERIC_INT8)
    out = tmp_path / "q.onnx"
    _, plan = compress(str(src), cfg, out)
    q = onnx.load(str(out))
    assert q.opset_import[0].version == 13
    converted = [n for n in q.graph.node if n.op_type in ("Unsqueeze", "Squeeze", "Split", "ReduceSum")]
    assert len(converted) == 4 and all(len(n.input) == 2 for n in converted)
    assert all(a.name not in ("axes", "split") for n in converted for a in n.attribute)
    check_against_reference(str(src), out, plan)


@pytest.mark.parametrize("weights,opset", [("INT8", 13), ("INT4", 21)])
def test_opset_11_semantics_kept_through_the_upgrade(tmp_path, weights, opset):
    """(Cin 4: INT4 weights need an even input-channel count.) Softmax on an inner axis (pre-13: flatten at the axis), Dropout's ratio attribute, and an equal Split keep their
    meaning when the model is raised to 13 (INT8) or 21 (INT4 weights): the output equals the opset-11 reference."""
    from onnx import helper, TensorProto
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32), "conv.weight")
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="/conv/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Softmax", ["c"], ["s"], name="/softmax", axis=1),
             helper.make_node("Dropout", ["s"], ["d"], name="/drop", ratio=0.3),
             helper.make_node("Split", ["d"], ["d0", "d1"], name="/split", axis=1),
             helper.make_node("Sub", ["d0", "d1"], ["y"], name="/sub")]
    g = helper.make_graph(nodes, "old", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 6
    src = tmp_path / "old.onnx"
    onnx.save(m, str(src))
    cfg = tmp_path / "c.cfg"
    cfg.write_text(GENERIC_INT8.replace("channel_wise: true", f"channel_wise: true dst_type: {weights}"))
    out = tmp_path / "q.onnx"
    _, plan = compress(str(src), cfg, out)
    q = onnx.load(str(out))
    assert q.opset_import[0].version == opset
    assert not any(a.name == "ratio" for n in q.graph.node if n.op_type == "Dropout" for a in n.attribute)
    check_against_reference(str(src), out, plan)
