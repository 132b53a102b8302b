"""Pruning: filter selection equals numpy's scoring and rounding rules, pruning zeroed channels preserves the function,
2:4 masks keep the two largest |w| of every group of 4 along Cin, and pruned models pass the checker and run."""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import models
import ortutil
from conftest import FIXTURES, run
from test_calibration import parse_record

CONFIGS = os.path.join(FIXTURES, "configs")
BASIC = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def filter_cfg(tmp_path, ratio, ascend, extra=""):
    cfg = tmp_path / "prune.cfg"
    cfg.write_text(f"prune_config {{ filter_pruner {{ balanced_l2_norm_filter_prune {{ prune_ratio: {ratio} "
                   f"ascend_optimized: {'true' if ascend else 'false'} }} }} }}\n{extra}")
    return cfg


def numpy_keep(weights, ratio, ascend):
    """BalancedL2Norm selection over producers' [C, rest] weights (SEMANTICS §4)."""
    norm = []
    for w in weights:
        s = np.sqrt((w.astype(np.float64) ** 2).sum(axis=1)) / w.shape[1]
        norm.append((s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.zeros_like(s))
    mean = np.mean(norm, axis=0)
    c = len(mean)
    remain = c - int(np.round(c * float(np.float32(ratio))))
    if ascend:
        remain = 16 if remain == 0 else -(-remain // 16) * 16
    remain = min(remain, c)
    order = sorted(range(c), key=lambda i: (mean[i], i))
    return sorted(order[c - remain:])


def weights_of(path):
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return m, inits, {n.name: n for n in m.graph.node}


def test_selection_equals_numpy_on_residual(tmp_path):
    src = os.path.join(FIXTURES, "residual.onnx")
    cfg = filter_cfg(tmp_path, 0.45, False, 'regular_prune_skip_layers: "fc"\n')
    out = tmp_path / "p.onnx"
    run(src, "--cfg", cfg, "-o", out, "--record", tmp_path / "r.txt")
    record = parse_record((tmp_path / "r.txt").read_text())
    _, w, nodes = weights_of(src)
    flat = lambda name: w[nodes[name].input[1]].reshape(w[nodes[name].input[1]].shape[0], -1)
    residual = ["/conv1/Conv", "/layer1/layer1.0/conv2/Conv", "/layer1/layer1.1/conv2/Conv"]
    expected = {n: numpy_keep([flat(x) for x in residual], 0.45, False) for n in residual}
    for single in ("/layer1/layer1.0/conv1/Conv", "/layer1/layer1.1/conv1/Conv"):
        expected[single] = numpy_keep([flat(single)], 0.45, False)
    for layer, keep in expected.items():
        got = [int(x) for x in record[layer]["kept_channels"].strip('"').split(",")]
        assert got == keep, layer
    assert len(expected["/conv1/Conv"]) == 32 - round(32 * 0.45)
    onnx.checker.check_model(str(out), full_check=True)
    ortutil.run(str(out), ortutil.inputs_for(src))


def zero_channels(src, dst, convs_and_bns, channels):
    """Zero `channels` of each conv's weight (and bias), and make its BatchNormalization output 0 there."""
    m = onnx.load(src)
    inits = {t.name: t for t in m.graph.initializer}
    nodes = {n.name: n for n in m.graph.node}
    def edit(name, f):
        a = numpy_helper.to_array(inits[name]).copy()
        f(a)
        inits[name].CopyFrom(numpy_helper.from_array(a, name))
    for conv, bn in convs_and_bns:
        n = nodes[conv]
        edit(n.input[1], lambda a: a.__setitem__(channels, 0))
        if len(n.input) > 2 and n.input[2]:
            edit(n.input[2], lambda a: a.__setitem__(channels, 0))
        if bn:
            b = nodes[bn]
            edit(b.input[2], lambda a: a.__setitem__(channels, 0))  # beta
            edit(b.input[3], lambda a: a.__setitem__(channels, 0))  # mean
    onnx.save(m, dst)


@pytest.mark.parametrize("case", ["chain", "residual"])
def test_pruning_zeroed_channels_preserves_the_function(case, tmp_path):
    if case == "chain":
        src = os.path.join(FIXTURES, "conv_bn_relu.onnx")
        pairs = [("/conv1/Conv", "/bn1/BatchNormalization")]
        channels = [1, 4, 5, 9, 11, 12, 14, 15]
        extra = 'regular_prune_skip_layers: ["conv2", "conv3", "fc"]\n'
    else:
        src = os.path.join(FIXTURES, "residual.onnx")
        pairs = [("/conv1/Conv", "/bn1/BatchNormalization"),
                 ("/layer1/layer1.0/conv2/Conv", "/layer1/layer1.0/bn2/BatchNormalization"),
                 ("/layer1/layer1.1/conv2/Conv", "/layer1/layer1.1/bn2/BatchNormalization")]
        channels = list(range(0, 32, 2))
        extra = 'regular_prune_skip_layers: ["layer1.0.conv1", "layer1.1.conv1", "fc"]\n'
    zeroed = str(tmp_path / "zeroed.onnx")
    zero_channels(src, zeroed, pairs, channels)
    out = tmp_path / "pruned.onnx"
    summary = json.loads(run(zeroed, "--cfg", filter_cfg(tmp_path, 0.5, False, extra), "-o", out, "--json").stdout)
    assert any(p.startswith("pruned:") for p in summary["prune"]), summary["prune"]
    m, w, nodes = weights_of(str(out))
    expected_channels = (32 if case == "residual" else 16) - len(channels)
    assert w[nodes[pairs[0][0]].input[1]].shape[0] == expected_channels
    feeds = ortutil.inputs_for(src)
    a, b = ortutil.run(zeroed, feeds)[0], ortutil.run(str(out), feeds)[0]
    assert np.abs(a - b).max() <= 1e-5 * max(1.0, float(np.abs(a).max()))
    assert os.path.getsize(out) < os.path.getsize(zeroed)


def numpy_two_of_four(w, cin_axis):
    w = np.moveaxis(w.copy(), cin_axis, -1)
    cin = w.shape[-1]
    if cin <= 2:
        return np.moveaxis(w, -1, cin_axis)
    pad = (-cin) % 4
    padded = np.concatenate([w, np.zeros(w.shape[:-1] + (pad,), w.dtype)], axis=-1)
    groups = padded.reshape(-1, 4)
    for g in groups:
        order = sorted(range(4), key=lambda j: (abs(g[j]), j))
        g[order[0]] = 0
        g[order[1]] = 0
    masked = groups.reshape(padded.shape)[..., :cin]
    return np.moveaxis(masked, -1, cin_axis)


@pytest.mark.parametrize("model", ["conv_bn_relu.onnx", "matmul_head.onnx", "digits_mlp.onnx", "depthwise.onnx"])
def test_two_of_four_masks(model, tmp_path):
    src = os.path.join(FIXTURES, model)
    cfg = tmp_path / "24.cfg"
    cfg.write_text("prune_config { n_out_of_m_pruner { l1_selective_prune { update_freq: 3 } } }\n")
    out = tmp_path / "p.onnx"
    run(src, "--cfg", cfg, "-o", out, "--record", tmp_path / "r.txt")
    assert "update_freq: 3" in (tmp_path / "r.txt").read_text()
    _, before, nodes_before = weights_of(src)
    _, after, nodes_after = weights_of(str(out))
    checked = 0
    for name, n in nodes_before.items():
        if n.op_type not in ("Conv", "Gemm", "MatMul") or n.input[1] not in before:
            continue
        w = before[n.input[1]]
        cin_axis = 1 if n.op_type == "Conv" or (n.op_type == "Gemm" and any(a.name == "transB" and a.i for a in n.attribute)) else 0
        got = after[nodes_after[name].input[1]]
        assert np.array_equal(got, numpy_two_of_four(w, cin_axis)), name
        moved = np.moveaxis(got, cin_axis, -1)
        if moved.shape[-1] > 2:
            full = moved[..., : moved.shape[-1] // 4 * 4].reshape(-1, 4)
            assert ((full == 0).sum(axis=1) >= 2).all(), name
        checked += 1
    assert checked >= 2
    onnx.checker.check_model(str(out), full_check=True)
    ortutil.run(str(out), ortutil.inputs_for(src))


@pytest.mark.parametrize("make", [lambda: models.resnet50(batch="N", image=64), lambda: models.mobilenet_v2(width=32),
                                  lambda: models.densenet(growth=16)], ids=["resnet50", "mobilenet_v2", "densenet"])
def test_generated_models_at_ratio_0_3(make, tmp_path):
    src = str(tmp_path / "m.onnx")
    onnx.save(make(), src)
    out = tmp_path / "p.onnx"
    summary = json.loads(run(src, "--cfg", filter_cfg(tmp_path, 0.3, True), "-o", out, "--record", tmp_path / "r.txt", "--json").stdout)
    pruned = [p for p in summary["prune"] if p.startswith("pruned:")]
    assert pruned, summary["prune"]
    onnx.checker.check_model(str(out), full_check=True)
    feeds = ortutil.inputs_for(src)
    assert ortutil.run(str(out), feeds)[0].shape == ortutil.run(src, feeds)[0].shape
    record = parse_record((tmp_path / "r.txt").read_text())
    _, w, nodes = weights_of(str(out))
    _, w0, nodes0 = weights_of(src)
    for layer, entry in record.items():
        kept = entry["kept_channels"].strip('"').split(",")
        assert len(kept) % 16 == 0, (layer, len(kept))
        assert w[nodes[layer].input[1]].shape[0] == len(kept)
    # The parameter count is what the kept channels predict: every conv weight is [kept out, kept in / group, k, k].
    for name, n in nodes.items():
        if n.op_type != "Conv":
            continue
        out_c = len(record[name]["kept_channels"].strip('"').split(",")) if name in record else w0[nodes0[name].input[1]].shape[0]
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        assert w[n.input[1]].shape[0] == out_c or group > 1, name
    assert sum(v.size for v in w.values()) < sum(v.size for v in w0.values())


def predicted_parameters(src, record):
    """Parameters the kept channels predict, computed from the original graph: each Conv/Gemm keeps its recorded
    output channels (else all); input channels follow the tensor feeding it through BN/Relu/Clip/pools/Add/Concat/
    Flatten; a depthwise conv keeps its input's channels; BN parameters follow their input."""
    m = onnx.load(src)
    shapes = {t.name: list(t.dims) for t in m.graph.initializer}
    channels = {m.graph.input[0].name: m.graph.input[0].type.tensor_type.shape.dim[1].dim_value}
    total = 0
    for n in m.graph.node:
        x = channels.get(n.input[0]) if n.input else None
        if n.op_type == "Conv":
            w = shapes[n.input[1]]
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            if group > 1 and w[1] == 1:  # depthwise: follows its input
                out = x
                total += out * int(np.prod(w[2:])) + (out if len(n.input) > 2 and n.input[2] else 0)
            else:
                out = len(record[n.name]["kept_channels"].split(",")) if n.name in record else w[0]
                total += out * x * int(np.prod(w[2:])) + (out if len(n.input) > 2 and n.input[2] else 0)
            channels[n.output[0]] = out
        elif n.op_type == "Gemm":
            w = shapes[n.input[1]]
            out = len(record[n.name]["kept_channels"].split(",")) if n.name in record else w[0]
            total += out * x + out
            channels[n.output[0]] = out
        elif n.op_type == "BatchNormalization":
            total += 4 * x
            channels[n.output[0]] = x
        elif n.op_type == "Concat":
            channels[n.output[0]] = sum(channels[i] for i in n.input)
        elif n.op_type in ("Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Add"):
            channels[n.output[0]] = x
    for t in m.graph.initializer:  # scalars such as Clip bounds
        if len(t.dims) == 0:
            total += 1
    return total


@pytest.mark.parametrize("make", [lambda: models.resnet50(batch="N", image=64), lambda: models.mobilenet_v2(width=32),
                                  lambda: models.densenet(growth=16)], ids=["resnet50", "mobilenet_v2", "densenet"])
def test_parameter_count_is_what_the_kept_channels_predict(make, tmp_path):
    src = str(tmp_path / "m.onnx")
    onnx.save(make(), src)
    out = tmp_path / "p.onnx"
    run(src, "--cfg", filter_cfg(tmp_path, 0.3, True), "-o", out, "--record", tmp_path / "r.txt")
    record = parse_record((tmp_path / "r.txt").read_text())
    got = sum(int(np.prod(t.dims)) for t in onnx.load(str(out)).graph.initializer)
    assert got == predicted_parameters(src, record)
    assert got < sum(int(np.prod(t.dims)) for t in onnx.load(src).graph.initializer)


def test_unprunable_groups_say_why(tmp_path):
    out = tmp_path / "p.onnx"
    summary = json.loads(run(os.path.join(FIXTURES, "gap_gemm.onnx"), "--cfg", filter_cfg(tmp_path, 0.5, False), "-o", out, "--json").stdout)
    assert any("reach graph output 'logits'" in p for p in summary["prune"]), summary["prune"]


def test_compressed_examples_run(tmp_path):
    c1 = tmp_path / "c1.onnx"
    run(os.path.join(FIXTURES, "residual.onnx"), "--cfg", os.path.join(CONFIGS, "compressed1.cfg"), "-o", c1, "--calib", "random", "--batch-size", "4")
    c2 = tmp_path / "c2.onnx"
    run(os.path.join(FIXTURES, "conv_bn_relu.onnx"), "--cfg", os.path.join(CONFIGS, "compressed2.cfg"), "-o", c2)
    for path, src in ((c1, "residual.onnx"), (c2, "conv_bn_relu.onnx")):
        onnx.checker.check_model(str(path), full_check=True)
        ortutil.run(str(path), ortutil.inputs_for(os.path.join(FIXTURES, src)), BASIC)


@pytest.mark.parametrize("model", ["residual.onnx", "concat_block.onnx", "depthwise.onnx", "gap_gemm.onnx", "conv_bn_relu.onnx",
                                   "shared_bias.onnx", "paddle_constants.onnx"])
def test_fixture_structures_at_ratio_0_3(model, tmp_path):
    """Residual Add, Concat, depthwise, GAP→Flatten→Gemm, Identity-shared biases and Constant-node weights: the pruned
    model passes the checker, runs, and is smaller."""
    src = os.path.join(FIXTURES, model)
    out = tmp_path / "p.onnx"
    summary = json.loads(run(src, "--cfg", filter_cfg(tmp_path, 0.3, False), "-o", out, "--json").stdout)
    onnx.checker.check_model(str(out), full_check=True)
    feeds = ortutil.inputs_for(src)
    assert ortutil.run(str(out), feeds)[0].shape == ortutil.run(src, feeds)[0].shape
    pruned = [p for p in summary["prune"] if p.startswith("pruned:")]
    assert pruned, summary["prune"]
    count = lambda p: sum(int(np.prod(t.dims)) for t in onnx.load(p).graph.initializer) + sum(
        int(np.prod(a.t.dims)) for n in onnx.load(p).graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value")
    assert count(str(out)) < count(src)
