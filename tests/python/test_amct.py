"""--format amct: the fake-quant model (standard ops) passes the checker, runs in onnxruntime and agrees with the QDQ
output; its integer weights, biases and dequant scales, and the deploy model's AscendQuant/AscendDequant parameters,
equal numpy's (BatchNormalization folded in numpy first)."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import ortutil
import reference
from conftest import FIXTURES, run

CONFIGS = os.path.join(FIXTURES, "configs")


def fold_bn_numpy(model):
    """{conv node name: (W', b')} with each Conv+BatchNormalization pair folded, float32."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    folded = {}
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        w = inits[n.input[1]]
        b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else np.zeros(w.shape[0], np.float32)
        users = consumers.get(n.output[0], [])
        if len(users) == 1 and users[0].op_type == "BatchNormalization":
            bn = users[0]
            g, beta, mean, var = (inits[x] for x in bn.input[1:5])
            eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
            k = (g / np.sqrt(var + np.float32(eps))).astype(np.float32)
            w = (w * k.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32)
            b = ((b - mean) * k + beta).astype(np.float32)
        folded[n.name] = (w, b)
    for n in model.graph.node:
        if n.op_type == "Gemm":
            folded[n.name] = (inits[n.input[1]], inits[n.input[2]])
    return folded


def expected_parameters(src, plan, force_fp16):
    folded = fold_bn_numpy(onnx.load(src))
    out = {}
    for name, entry in plan.items():
        if not entry["quant"]["enabled"]:
            continue
        act, wts = entry["quant"]["act"], entry["quant"]["wts"]
        bits_a = {"INT4": 4, "INT8": 8, "INT16": 16}[act["type"]]
        s, o = reference.asymmetric(0.0 if act["fixed_min"] else act["clip_min"], act["clip_max"], bits_a)
        s = reference.fp16_scale(s) if force_fp16 else s
        w, b = folded[name]
        op = "Conv" if w.ndim == 4 else "Gemm"
        bits_w = {"INT4": 4, "INT8": 8}[wts["type"]]
        _, q, sw = reference.weight_fake_quant(w, op, True, 1, bits_w, wts["channel_wise"])
        deq = (sw * s).astype(np.float32)
        bias = np.round(b / (deq if deq.size > 1 else deq[0])).astype(np.float32)
        out[name] = dict(s=s, o=o, bits_a=bits_a, q=q, shape=w.shape, deq=deq, bias=bias, bits_w=bits_w)
    return out


@pytest.fixture(scope="module")
def amct_outputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("amct")
    src = os.path.join(FIXTURES, "residual.onnx")
    cfg = os.path.join(CONFIGS, "quant.cfg")
    summary = json.loads(run(src, "--cfg", cfg, "-o", d / "residual.onnx", "--format", "amct", "--json").stdout)
    run(src, "--cfg", cfg, "-o", d / "residual_qdq.onnx")
    plan = {l["name"]: l for l in json.loads(run("plan", src, "--cfg", cfg, "--json").stdout)["layers"]}
    return src, d, summary, plan, expected_parameters(src, plan, force_fp16=True)


def test_both_files_are_written(amct_outputs):
    src, d, summary, _, _ = amct_outputs
    assert summary["outputs"] == [str(d / "residual_fake_quant_model.onnx"), str(d / "residual_deploy_model.onnx")]
    assert not (d / "residual.onnx").exists()


def test_fake_quant_model_runs_and_agrees_with_qdq(amct_outputs):
    src, d, _, _, _ = amct_outputs
    fake = str(d / "residual_fake_quant_model.onnx")
    onnx.checker.check_model(fake, full_check=True)
    feeds = ortutil.inputs_for(src)
    a = ortutil.run(fake, feeds)[0]
    b = ortutil.run(str(d / "residual_qdq.onnx"), feeds)[0]
    f = ortutil.run(src, feeds)[0]
    # Same quantization; only BN folding, Mul(1/s_d) and the rounded integer bias differ.
    assert np.abs(a - b).max() <= 1e-3 * np.abs(b).max()
    assert np.abs(a - f).max() > 1e-3  # and it is quantized


def test_fake_quant_structure_and_numbers(amct_outputs):
    _, d, _, _, expected = amct_outputs
    m = onnx.load(str(d / "residual_fake_quant_model.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    nodes = {n.name: n for n in m.graph.node}
    assert not any(n.op_type == "BatchNormalization" for n in m.graph.node)
    for layer, e in expected.items():
        chain = [nodes[f"{layer}.quant.fakequant.{k}"] for k in ("mul", "round", "add", "clip", "sub")]
        assert [n.op_type for n in chain] == ["Mul", "Round", "Add", "Clip", "Sub"]
        assert inits[chain[0].input[1]] == np.float32(1) / e["s"]
        assert inits[chain[2].input[1]] == e["o"]
        lo, hi = inits[chain[3].input[1]], inits[chain[3].input[2]]
        assert (lo, hi) == (-(2 ** (e["bits_a"] - 1)), 2 ** (e["bits_a"] - 1) - 1)
        layer_node = nodes[layer]
        assert layer_node.input[0] == chain[4].output[0]
        w = inits[layer_node.input[1]]
        view, _ = reference.channel_view(w, "Conv" if w.ndim == 4 else "Gemm", True, 1)
        assert np.array_equal(view, e["q"].astype(np.float32)), layer
        assert np.array_equal(inits[layer_node.input[2]], e["bias"]), layer
        deq = nodes[f"{layer}.fakedequant.mul"]
        assert deq.input[0] == layer_node.output[0]
        scale = inits[deq.input[1]]
        assert np.array_equal(scale.reshape(-1), e["deq"]), layer
        if e["deq"].size > 1:
            assert scale.shape == ((1, e["deq"].size, 1, 1) if w.ndim == 4 else (e["deq"].size,))


def test_deploy_model_structure_and_bits(amct_outputs):
    _, d, _, _, expected = amct_outputs
    m = onnx.load(str(d / "residual_deploy_model.onnx"))
    assert ("amct", 1) in [(o.domain, o.version) for o in m.opset_import]
    inits = {t.name: t for t in m.graph.initializer}
    nodes = {n.name: n for n in m.graph.node}
    for layer, e in expected.items():
        quant, dequant, node = nodes[f"{layer}.quant"], nodes[f"{layer}.dequant"], nodes[layer]
        assert (quant.op_type, quant.domain, dequant.op_type, dequant.domain) == ("AscendQuant", "amct", "AscendDequant", "amct")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in quant.attribute}
        assert np.float32(attrs["scale"]) == np.float32(1) / e["s"] and attrs["offset"] == e["o"]
        assert attrs["dst_type"] == {8: b"INT8", 4: b"INT4", 16: b"INT16"}[e["bits_a"]]
        assert node.input[0] == quant.output[0] and dequant.input[0] == node.output[0]
        w = inits[node.input[1]]
        assert w.data_type == onnx.TensorProto.INT8
        q = numpy_helper.to_array(w)
        if e["bits_w"] == 4:
            # Two per byte along Cin (axis 1), low nibble = even index: unpack and compare.
            assert q.shape[1] * 2 == e["shape"][1]
            raw = q.view(np.uint8)
            lo = ((raw & 0x0F).astype(np.int16) ^ 8) - 8
            hi = ((raw >> 4).astype(np.int16) ^ 8) - 8
            unpacked = np.stack([lo, hi], axis=2).reshape(e["shape"])
            assert np.array_equal(unpacked.reshape(e["shape"][0], -1), e["q"])
        else:
            view, _ = reference.channel_view(q, "Conv" if q.ndim == 4 else "Gemm", True, 1)
            assert np.array_equal(view, e["q"])
        bias = inits[node.input[2]]
        assert bias.data_type == onnx.TensorProto.INT32
        assert np.array_equal(numpy_helper.to_array(bias), e["bias"].astype(np.int32))
        param = inits[dequant.input[1]]
        assert param.data_type == onnx.TensorProto.UINT64
        p = numpy_helper.to_array(param)
        assert np.array_equal((p & 0xFFFFFFFF).astype(np.uint32), e["deq"].view(np.uint32) & np.uint32(0xFFFFE000))
        assert np.all((p >> 40) & 0xFF == 0) and np.all((p >> 32) & 0xFF == 0)


def test_digits_amct_fake_quant_accuracy(tmp_path):
    src = os.path.join(FIXTURES, "digits_mlp.onnx")
    run(src, "--cfg", os.path.join(CONFIGS, "digits_int8.cfg"), "-o", tmp_path / "digits.onnx", "--format", "amct")
    d = np.load(os.path.join(FIXTURES, "digits_test.npz"))
    accs = []
    for path in (src, str(tmp_path / "digits_fake_quant_model.onnx")):
        y = ortutil.run(path, {"input": d["input"]})[0]
        accs.append(float((y.argmax(1) == d["label"]).mean()))
    assert accs[1] >= accs[0] - 0.005, accs


def test_scalar_gemm_bias_is_one_integer_per_channel_in_both_models(tmp_path):
    from onnx import TensorProto, helper
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "fc.weight")
    b = numpy_helper.from_array(np.array([0.25], np.float32), "fc.bias")
    g = helper.make_graph([helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"], name="/fc/Gemm", transB=1)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], initializer=[w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    src = str(tmp_path / "fc.onnx")
    onnx.save(m, src)
    cfg = tmp_path / "c.cfg"
    cfg.write_text("retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 2 clip_min: -2 } } }\n"
                   "retrain_weight_quant_config { arq_retrain { } }\n")
    run(src, "--cfg", cfg, "-o", tmp_path / "fc_out.onnx", "--format", "amct")
    fake = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "fc_out_fake_quant_model.onnx")).graph.initializer}
    deploy = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(tmp_path / "fc_out_deploy_model.onnx")).graph.initializer}
    s, _ = reference.asymmetric(-2, 2, 8)
    sw = reference.symmetric_scales(numpy_helper.to_array(w).reshape(1, -1), None, 8)[0]
    want = np.round(np.float32(0.25) / np.float32(sw * s)).astype(np.float32)
    assert np.array_equal(fake["fc.bias_int"], np.full(4, want, np.float32))
    assert np.array_equal(deploy["fc.bias_int32"], np.full(4, want, np.int32))
