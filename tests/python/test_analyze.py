"""`amct-pipe analyze`: per-layer sensitivity on a generated conv chain with deliberately sensitive layers (one input
channel ×100 ahead of them), checked against an independent onnxruntime/numpy measurement; the HTML/SVG report in
headless Chromium; `--suggest` round trip (parses in amct-pipe and protobuf text_format, compress with it reaches the
promised SQNR in onnxruntime); bad input."""
import importlib.util
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import ROOT, run
from ortutil import run as ort_run

SENSITIVE = ["conv3", "conv5"]


def make_model(path, seed=0):
    """x[N,4,12,12] → six 3×3 convs (8 channels, Relu between). Conv2 and conv4 write channel 0 ×100 and conv3 and
    conv5 read it /100: the float function is unchanged, but the inputs of conv3 and conv5 have one outlier channel,
    so a per-tensor activation quantizer loses the other seven there."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev, cin = [], [], "x", 4
    for k in range(1, 7):
        w = (rng.standard_normal((8, cin, 3, 3)) / np.sqrt(cin * 9)).astype(np.float32)
        if f"conv{k + 1}" in SENSITIVE:
            w[0] *= 100
        if f"conv{k}" in SENSITIVE:
            w[:, 0] /= 100
        b = (0.1 * rng.standard_normal(8)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{k}"), numpy_helper.from_array(b, f"b{k}")]
        out = f"c{k}"
        nodes.append(helper.make_node("Conv", [prev, f"w{k}", f"b{k}"], [out], name=f"conv{k}", pads=[1, 1, 1, 1]))
        if k < 6:
            nodes.append(helper.make_node("Relu", [out], [f"r{k}"], name=f"relu{k}"))
            out = f"r{k}"
        prev, cin = out, 8
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 12, 12])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["N", 8, 12, 12])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_data(path, n=8, seed=1):
    x = np.random.default_rng(seed).standard_normal((n, 4, 12, 12)).astype(np.float32)
    np.savez(path, x=x)
    return x


def config(path, act="INT8", wts="INT8", extra=""):
    with open(path, "w") as f:
        f.write(f"""# a test config: IFMR clips (no clip_max_min)
batch_num: 1
retrain_data_quant_config: {{ ulq_quantize: {{ dst_type: {act} }} }}
retrain_weight_quant_config: {{ arq_retrain: {{ channel_wise: true dst_type: {wts} }} }}
{extra}""")
    return path


def sqnr(ref, q):
    ref, q = np.asarray(ref, np.float64), np.asarray(q, np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - q) ** 2))


@pytest.fixture
def setup(tmp_path):
    model = str(tmp_path / "chain.onnx")
    make_model(model)
    data = str(tmp_path / "calib.npz")
    x = make_data(data)
    return tmp_path, model, data, x


def analyze(model, cfg, data, *extra):
    out = run("analyze", model, "--cfg", cfg, "--calib", data, "--batch-size", 8, "--json", "--quiet", *extra).stdout
    return json.loads(out)


def compress_sqnr(tmp_path, model, cfg, data, x, name):
    """Compresses with amct-pipe (QDQ), runs float and quantized in onnxruntime, returns the output SQNR (numpy)."""
    out = str(tmp_path / f"{name}.onnx")
    run(model, "--cfg", cfg, "--calib", data, "--batch-size", len(x), "-o", out, "--quiet")
    (ref,) = ort_run(model, {"x": x})
    (q,) = ort_run(out, {"x": x}, level=ORT_BASIC)
    return sqnr(ref, q)


ORT_BASIC = __import__("onnxruntime").GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_sensitive_layers_rank_first(setup):
    tmp_path, model, data, _ = setup
    report = analyze(model, config(str(tmp_path / "int8.cfg")), data)
    ranked = sorted(report["layers"], key=lambda l: l["output_sqnr"])
    assert {l["name"] for l in ranked[:2]} == set(SENSITIVE)
    # Far apart: the outlier channel costs > 15 dB against every other layer.
    assert ranked[1]["output_sqnr"] + 15 < ranked[2]["output_sqnr"]
    assert [l["name"] for l in report["layers"]] == [f"conv{k}" for k in range(1, 7)]
    first = report["layers"][0]
    assert first["input_shape"] == [8, 4, 12, 12] and first["output_shape"] == [8, 8, 12, 12]
    assert first["weight_shape"] == [8, 4, 3, 3] and first["act_type"] == "INT8" and first["source"] == "global"
    assert report["samples"] == 8 and report["all_layers_sqnr"] < ranked[0]["output_sqnr"] + 0.5
    # A single-layer run re-runs only the part after the layer: conv6 re-runs its quantizer and itself.
    assert report["layers"][5]["rerun_nodes"] == 2 and report["layers"][0]["rerun_nodes"] > 2


@pytest.mark.parametrize("layer", ["conv3", "conv4"])
def test_single_layer_sqnr_matches_onnxruntime(setup, layer):
    """The analysis of one layer against compress with a config quantizing only that layer, run in onnxruntime."""
    tmp_path, model, data, x = setup
    report = analyze(model, config(str(tmp_path / "int8.cfg")), data)
    others = "".join(f'quant_skip_layers: "conv{k}"\n' for k in range(1, 7) if f"conv{k}" != layer)
    expected = compress_sqnr(tmp_path, model, config(str(tmp_path / "one.cfg"), extra=others), data, x, layer)
    entry = next(l for l in report["layers"] if l["name"] == layer)
    assert abs(entry["output_sqnr"] - expected) < 0.1, (entry["output_sqnr"], expected)
    # The layer's own output: both models with its output value added as a graph output.
    value = f"c{layer[4:]}"
    outs = []
    for path in (model, str(tmp_path / f"{layer}.onnx")):
        m = onnx.load(path)
        m.graph.output.append(helper.make_tensor_value_info(value, TensorProto.FLOAT, None))
        onnx.save(m, path + ".probe.onnx")
        outs.append(ort_run(path + ".probe.onnx", {"x": x}, level=ORT_BASIC)[1])
    assert abs(entry["layer_sqnr"] - sqnr(*outs)) < 0.1, (entry["layer_sqnr"], sqnr(*outs))


def test_all_layers_sqnr_matches_onnxruntime(setup):
    tmp_path, model, data, x = setup
    cfg = config(str(tmp_path / "int4.cfg"), "INT4", "INT8")
    report = analyze(model, cfg, data)
    expected = compress_sqnr(tmp_path, model, cfg, data, x, "all")
    assert abs(report["all_layers_sqnr"] - expected) < 0.1, (report["all_layers_sqnr"], expected)


def text_format_class():
    path = os.path.join(ROOT, "scripts", "make-textformat-goldens.py")
    spec = importlib.util.spec_from_file_location("goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.config_class()


def test_suggest_round_trip(setup):
    tmp_path, model, data, x = setup
    cfg = config(str(tmp_path / "int4.cfg"), "INT4", "INT4")
    out = str(tmp_path / "suggested.cfg")
    target = 20.0
    report = analyze(model, cfg, data, "--suggest", out, "--min-sqnr", target)
    s = report["suggestion"]
    assert s["reached"] and s["sqnr_after"] >= target and s["sqnr_before"] < target
    text = open(out).read()
    assert text.startswith(open(cfg).read())  # the user's file as written, comments kept
    raised = {c["layer"] for c in s["changes"]}
    assert set(SENSITIVE) <= raised and len(raised) < 6
    for c in s["changes"]:
        assert f'# {c["layer"]}: output SQNR ' in text
    from google.protobuf import text_format
    parsed = text_format.Parse(text, text_format_class()())
    named = {o.layer_name for o in parsed.override_layer_configs} | set(parsed.quant_skip_layers)
    assert named == raised
    plan = json.loads(run("plan", model, "--cfg", out, "--json").stdout)
    by_name = {l["name"]: l for l in plan["layers"]}
    for c in s["changes"]:
        q = by_name[c["layer"]]["quant"]
        assert q["enabled"] == (c["action"] != "skip")
        if q["enabled"]:
            assert (q["act"]["type"], q["wts"]["type"]) == (c["act_type"], c["weight_type"])
    achieved = compress_sqnr(tmp_path, model, out, data, x, "suggested")
    assert achieved >= target - 1, achieved
    assert abs(achieved - s["sqnr_after"]) < 0.5


def test_report_renders(setup):
    tmp_path, model, data, _ = setup
    directory = tmp_path / "report"
    analyze(model, config(str(tmp_path / "int8.cfg")), data, "--report", directory)
    report = json.load(open(directory / "report.json"))
    svg = ET.parse(directory / "sensitivity.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in svg.iter(ns + "rect") if r.find(ns + "title") is not None]
    assert len(bars) == 6
    heights = [float(b.get("height")) for b in bars]
    worst = min(range(6), key=lambda k: report["layers"][k]["output_sqnr"])
    assert heights[worst] == min(heights)
    labels = {t.text for t in svg.iter(ns + "text")}
    assert set(SENSITIVE) <= labels
    html = open(directory / "index.html").read()
    assert html.count("<tr><td>") == 6 and "sensitivity.svg" in html and "global" in html
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install-deps installs it): the render check needs a browser")
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--screenshot={shot}", "--window-size=1000,800", f"file://{directory / 'index.html'}"],
        capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, result.stderr[-2000:]
    for bad in ("Uncaught", "CONSOLE", "Failed to load"):
        assert bad not in result.stderr, result.stderr[-2000:]


def test_overrides_by_name_carry_their_config_place(setup):
    tmp_path, model, data, _ = setup
    extra = 'override_layer_configs: {\n    layer_name: "conv2"\n' \
            '    retrain_data_quant_config: { ulq_quantize: { dst_type: INT8 } }\n}\n'
    report = analyze(model, config(str(tmp_path / "o.cfg"), extra=extra), data)
    conv2 = report["layers"][1]
    assert conv2["source"].startswith("override by name") and (conv2["source_line"], conv2["source_column"]) == (6, 17)


def test_bad_input(setup):
    tmp_path, model, _, _ = setup
    cfg = config(str(tmp_path / "int8.cfg"))
    r = run("analyze", model, "--cfg", cfg, check=False)
    assert r.returncode == 1 and "--calib" in r.stderr and "calibration data" in r.stderr
    r = run("analyze", model, "--cfg", cfg, "--calib", "random", "--suggest", str(tmp_path / "s.cfg"), check=False)
    assert r.returncode != 0 and "--min-sqnr" in r.stderr
    r = run("analyze", model, "--cfg", cfg, "--calib", str(tmp_path / "missing.npz"), check=False)
    assert r.returncode == 1 and "missing.npz" in r.stderr


def test_residual_model_matches_onnxruntime(tmp_path):
    """A residual net (Adds reading values from before a layer), FORCE_FP16 scales, overrides and skips; two batches.
    Every single-layer run must see the float values its downstream part reads from outside it."""
    from conftest import FIXTURES
    model = os.path.join(FIXTURES, "residual.onnx")
    cfg = os.path.join(FIXTURES, "configs", "quant.cfg")
    x = np.random.default_rng(3).standard_normal((8, 3, 16, 16)).astype(np.float32)
    data = str(tmp_path / "data.npz")
    np.savez(data, input=x)
    out = run("analyze", model, "--cfg", cfg, "--calib", data, "--batch-size", 4, "--json", "--quiet").stdout
    report = json.loads(out)
    assert report["samples"] == 8 and report["batches"] == 2
    quantized = str(tmp_path / "q.onnx")
    run(model, "--cfg", cfg, "--calib", data, "--batch-size", 4, "-o", quantized, "--quiet")
    ref, q = ort_run(model, {"input": x})[0], ort_run(quantized, {"input": x}, level=ORT_BASIC)[0]
    assert abs(report["all_layers_sqnr"] - sqnr(ref, q)) < 0.1, (report["all_layers_sqnr"], sqnr(ref, q))
    # The worst layer the global settings decide, alone: the same global part and every other layer skipped.
    layer = min((l for l in report["layers"] if l["source"] == "global"), key=lambda l: l["output_sqnr"])
    names = [l["name"] for l in json.loads(run("plan", model, "--cfg", cfg, "--json").stdout)["layers"]]
    one = str(tmp_path / "one.cfg")
    with open(one, "w") as f:
        f.write("batch_num: 2\nfakequant_precision_mode: FORCE_FP16_QUANT\n"
                "retrain_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 6.0 clip_min: -6.0 } } }\n"
                "retrain_weight_quant_config: { arq_retrain: { channel_wise: true dst_type: INT8 } }\n"
                + "".join(f'quant_skip_layers: "{n}"\n' for n in names if n != layer["name"]))
    run(model, "--cfg", one, "--calib", data, "--batch-size", 4, "-o", quantized, "--quiet")
    q = ort_run(quantized, {"input": x}, level=ORT_BASIC)[0]
    assert abs(layer["output_sqnr"] - sqnr(ref, q)) < 0.1, (layer["name"], layer["output_sqnr"], sqnr(ref, q))


def test_shape_computed_before_the_layer(tmp_path):
    """Reshape after conv2 takes its shape from Shape(conv1's output), computed before conv2: the single-layer run of
    conv2 must get that shape as a constant (the float run folds it), not as data."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in [("w1", (4, 3, 3, 3)), ("w2", (4, 4, 3, 3))]]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Shape", ["c1"], ["s"], name="shape"),
             helper.make_node("Conv", ["c1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c2"], ["f"], name="flat"),
             helper.make_node("Reshape", ["f", "s"], ["y"], name="reshape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    model, data = str(tmp_path / "shape.onnx"), str(tmp_path / "d.npz")
    onnx.save(m, model)
    x = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    np.savez(data, x=x)
    cfg = config(str(tmp_path / "c.cfg"))
    report = analyze(model, cfg, data)
    assert [l["name"] for l in report["layers"]] == ["conv1", "conv2"]
    expected = compress_sqnr(tmp_path, model, config(str(tmp_path / "one.cfg"), extra='quant_skip_layers: "conv1"\n'),
                             data, x, "conv2")
    assert abs(report["layers"][1]["output_sqnr"] - expected) < 0.1, (report["layers"][1]["output_sqnr"], expected)


def hostile():
    import test_hostile_models
    return test_hostile_models


@pytest.mark.parametrize("mutation", sorted(hostile().MUTATIONS))
def test_hostile_models(tmp_path, mutation):
    """The structurally hostile models of test_hostile_models.py through analyze (IFMR config, report, suggest):
    exit 0, or 1 with one error line, no crash, nothing written on failure."""
    h = hostile()
    m = h.base_model()
    h.MUTATIONS[mutation](m)
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    cfg = tmp_path / "ifmr.cfg"
    cfg.write_text(h.IFMR)
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    out.mkdir()
    result = run("analyze", src, "--cfg", cfg, "--calib", npz, "--report", out / "report", "--suggest",
                 out / "s.cfg", "--min-sqnr", 30, "--quiet", check=False)
    h.check(result, out, f"{mutation}: analyze")
    if result.returncode == 0:
        assert sorted(os.listdir(out)) == ["report", "s.cfg"]


def test_suggest_leaves_overrides_by_name(setup):
    """conv3 has an override by name of its own (INT4): the suggestion may not add a second one, so it raises other
    layers (here conv5 must be raised and conv3 stays as the user wrote it), and what it promises still holds."""
    tmp_path, model, data, x = setup
    extra = ('override_layer_configs: {\n    layer_name: "conv3"\n'
             '    retrain_data_quant_config: { ulq_quantize: { dst_type: INT8 } }\n'
             '    retrain_weight_quant_config: { arq_retrain: { channel_wise: true dst_type: INT8 } }\n}\n')
    cfg = config(str(tmp_path / "o.cfg"), "INT4", "INT4", extra=extra)
    out = str(tmp_path / "s.cfg")
    s = analyze(model, cfg, data, "--suggest", out, "--min-sqnr", 8)["suggestion"]
    raised = {c["layer"] for c in s["changes"]}
    assert "conv3" not in raised and "conv5" in raised and s["reached"]
    assert open(out).read().count('layer_name: "conv3"') == 1
    assert compress_sqnr(tmp_path, model, out, data, x, "s") >= 8 - 1
