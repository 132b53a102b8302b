"""Channel rules for ops added as one table entry (Sources/Passes/ChannelRules.swift): InstanceNormalization's scale
and B and PRelu's per-channel slope follow a pruned Conv's channels. Each model is built here with onnx.helper; the
channels pruned are zeroed first (so the function cannot change), and onnxruntime checks the pruned model against
the zeroed one. Also: a pruned model is byte-for-byte the same on every run."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortutil
from conftest import FIXTURES, run
from test_calibration import parse_record

C = 8
ZEROED = [1, 2, 5, 6]  # the channels of conv a whose filters are zero: the lowest L2 scores, pruned at ratio 0.5


def model(middle):
    """x[1,3,6,6] → Conv a [C,3,3,3] → <middle> → Relu → Conv b [4,C,1,1] → y, with channels ZEROED of a zero."""
    rng = np.random.default_rng(7)
    wa = rng.standard_normal((C, 3, 3, 3)).astype(np.float32)
    ba = rng.standard_normal(C).astype(np.float32)
    wa[ZEROED] = 0
    ba[ZEROED] = 0
    inits = [numpy_helper.from_array(wa, "a.weight"), numpy_helper.from_array(ba, "a.bias"),
             numpy_helper.from_array(rng.standard_normal((4, C, 1, 1)).astype(np.float32), "b.weight")]
    nodes = [helper.make_node("Conv", ["x", "a.weight", "a.bias"], ["a.out"], name="a", pads=[1, 1, 1, 1])]
    nodes += middle(rng, inits)
    nodes += [helper.make_node("Relu", ["m.out"], ["r.out"], name="relu"),
              helper.make_node("Conv", ["r.out", "b.weight"], ["y"], name="b")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(m, full_check=True)
    return m


def instance_norm(rng, inits):
    scale = rng.uniform(0.5, 2, C).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    bias[ZEROED] = 0  # a zero channel normalizes to B: 0 there keeps the zeroed channels at 0
    inits += [numpy_helper.from_array(scale, "in.scale"), numpy_helper.from_array(bias, "in.B")]
    return [helper.make_node("InstanceNormalization", ["a.out", "in.scale", "in.B"], ["m.out"], name="in")]


def prelu(shape):
    def make(rng, inits):
        slope = rng.uniform(0.05, 0.5, shape).astype(np.float32)
        inits.append(numpy_helper.from_array(slope, "slope"))
        return [helper.make_node("PRelu", ["a.out", "slope"], ["m.out"], name="prelu")]
    return make


CASES = {
    "instance_norm": (instance_norm, {"in.scale": [C - len(ZEROED)], "in.B": [C - len(ZEROED)]}),
    "prelu_per_channel": (prelu((C, 1, 1)), {"slope": [C - len(ZEROED), 1, 1]}),
    "prelu_shared": (prelu((1,)), {"slope": [1]}),
}


@pytest.mark.parametrize("case", CASES)
def test_new_entries_follow_the_pruned_channels(case, tmp_path):
    middle, shapes = CASES[case]
    src = str(tmp_path / "m.onnx")
    onnx.save(model(middle), src)
    cfg = tmp_path / "prune.cfg"
    cfg.write_text("prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.5 "
                   "ascend_optimized: false } } }\nregular_prune_skip_layers: \"b\"\n")
    out = str(tmp_path / "p.onnx")
    summary = json.loads(run(src, "--cfg", cfg, "-o", out, "--json", "--record", tmp_path / "r.txt").stdout)
    assert f"pruned: a: {C} → {C - len(ZEROED)} channels (ratio 0.5)" in summary["prune"], summary["prune"]
    record = parse_record((tmp_path / "r.txt").read_text())
    kept = [int(c) for c in record["a"]["kept_channels"].strip('"').split(",")]
    assert kept == [c for c in range(C) if c not in ZEROED]

    pruned = onnx.load(out)
    onnx.checker.check_model(pruned, full_check=True)
    inits = {t.name: numpy_helper.to_array(t) for t in pruned.graph.initializer}
    nodes = {n.name: n for n in pruned.graph.node}
    before = onnx.load(src)
    original_inits = {t.name: numpy_helper.to_array(t) for t in before.graph.initializer}
    middle_before = before.graph.node[1]
    for name, shape in shapes.items():
        got = inits[nodes[middle_before.name].input[list(middle_before.input).index(name)]]
        assert list(got.shape) == shape, name
        original = original_inits[name]
        expected = original[kept] if original.shape[0] == C else original
        assert np.array_equal(got, expected), name
    assert inits[nodes["b"].input[1]].shape == (4, C - len(ZEROED), 1, 1)

    feeds = ortutil.inputs_for(src)
    a, b = ortutil.run(src, feeds)[0], ortutil.run(out, feeds)[0]
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))


def test_pruned_model_is_the_same_on_every_run(tmp_path):
    """Dependents and groups are pruned in graph order, so the new initializers come in the same order each run."""
    src = os.path.join(FIXTURES, "residual.onnx")
    cfg = tmp_path / "prune.cfg"
    cfg.write_text("prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.5 } } }\n"
                   "regular_prune_skip_layers: \"fc\"\n")
    outputs = []
    for i in range(4):
        out = tmp_path / f"p{i}.onnx"
        run(src, "--cfg", cfg, "-o", out)
        outputs.append(out.read_bytes())
    assert len(set(outputs)) == 1
