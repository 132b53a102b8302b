"""The library half (issue 12): the runnable example `custom-pipeline` (the default compress pipeline with a user pass
inserted), that it and the CLI print the same summary, and that the CLI is a thin client of `Passes`."""
import json
import os
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from conftest import FIXTURES, ROOT, run

RESIDUAL = os.path.join(FIXTURES, "residual.onnx")


def run_example(*args, check=True):
    return run(*args, check=check, program="custom-pipeline")


def weight_sources(model):
    """Per Conv/Gemm node: the op that produces its weight ('initializer' for a float weight)."""
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    inits = {t.name for t in model.graph.initializer}
    return {n.name: ("initializer" if n.input[1] in inits else producers.get(n.input[1]))
            for n in model.graph.node if n.op_type in ("Conv", "Gemm")}


def weight_count(model, node_name):
    node = next(n for n in model.graph.node if n.name == node_name)
    init = next(t for t in model.graph.initializer if t.name == node.input[1])
    return int(np.prod(init.dims))


def test_custom_pipeline_keeps_small_layers_float_and_runs_in_onnxruntime(tmp_path):
    out = tmp_path / "out.onnx"
    result = run_example(RESIDUAL, out)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    source = onnx.load(RESIDUAL)
    small = {name for name in weight_sources(source) if weight_count(source, name) < 1000}
    assert small, "the fixture should have layers under 1,000 weights"
    sources = weight_sources(model)
    for name, producer in sources.items():
        assert producer == ("initializer" if name in small else "DequantizeLinear"), name
    # The summary names each kept layer and why; the printed pipeline shows where the pass went.
    for name in small:
        assert re.search(rf"float\s+{re.escape(name)}: n/a: \d+ weights, fewer than 1000", result.stdout)
    lines = result.stdout.splitlines()
    order = [l.split(". ", 1)[1] for l in lines if re.match(r"\s+\d+\. ", l)]
    assert order[order.index("resolve-overrides") + 1] == "keep-small-layers-float"
    # onnxruntime runs it, close to the float model (INT8, 4 of 6 layers).
    ref = ort.InferenceSession(RESIDUAL, providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name, shape = ref.get_inputs()[0].name, ref.get_inputs()[0].shape
    shape = [d if isinstance(d, int) else 2 for d in shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    a, b = ref.run(None, {name: x})[0], got.run(None, {name: x})[0]
    assert np.abs(a - b).max() <= 0.1 * np.abs(a).max() + 1e-3


def test_library_and_cli_print_the_same_summary(tmp_path):
    cfg = os.path.join(FIXTURES, "configs", "compressed1.cfg")
    lib = run_example(RESIDUAL, tmp_path / "lib.onnx", "--cfg", cfg, "--min-weights", "0").stdout
    cli = run(RESIDUAL, "--cfg", cfg, "-o", tmp_path / "cli.onnx", "--calib", "random").stdout
    summary_of = lambda text: text[text.index("amct-pipe: "):].splitlines()[1:]
    assert summary_of(lib) == summary_of(cli)
    assert (tmp_path / "lib.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()


def test_cli_json_summary_has_every_key(tmp_path):
    summary = json.loads(run(RESIDUAL, "--cfg", os.path.join(FIXTURES, "configs", "quant.cfg"),
                             "-o", tmp_path / "o.onnx", "--json").stdout)
    assert summary["calibration"] is None and summary["retrain"] is None
    assert summary["size_before"] == os.path.getsize(RESIDUAL)
    assert summary["size_after"] == [os.path.getsize(tmp_path / "o.onnx")]
    assert summary["opset"] == 21 and summary["outputs"] == [str(tmp_path / "o.onnx")]
    assert [p.split(":")[0] for p in summary["passes"]][:4] == [
        "validate-graph", "match-layers", "mark-skips", "resolve-overrides"]
    q = {e["layer"]: e for e in summary["quantized"]}
    # quant.cfg: clips ±6 (INT8), input from a Relu so fixed_min: min' = 0, s_d = 6/255 rounded to float16
    # (FORCE_FP16_QUANT); INT4 weights → opset 21.
    assert q["/layer1/layer1.0/conv2/Conv"]["scale_d"] == pytest.approx(float(np.float16(6 / 255)), rel=1e-6)
    assert q["/layer1/layer1.0/conv2/Conv"]["offset_d"] == -128


def test_example_refuses_bad_arguments(tmp_path):
    result = run_example(RESIDUAL, check=False)
    assert result.returncode == 1 and "usage: custom-pipeline" in result.stderr
    result = run_example(RESIDUAL, tmp_path / "o.onnx", "--cfg", tmp_path / "missing.cfg", check=False)
    assert result.returncode == 1 and "missing.cfg" in result.stderr and not (tmp_path / "o.onnx").exists()


def test_cli_imports_only_the_library():
    imports = set()
    folder = os.path.join(ROOT, "Sources", "amct-pipe")
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as f:
            imports |= {l.split()[1] for l in f if l.startswith("import ")}
    assert imports <= {"Passes", "ArgumentParser", "Foundation"}, imports
