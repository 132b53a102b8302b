"""Structurally hostile models: valid protobuf with wrong semantics (inputs missing, tensors one element short or of the
wrong rank, dims of -1, non-finite weights and biases, absurd attributes) driven through every command. Each run either
succeeds or ends with exit 1 and `amct-pipe: error:` (never a signal, never a backtrace), leaves no output file on
failure, and never changes its input."""
import hashlib
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run

C = 4  # channels of the base model


def base_model():
    """x[1,3,8,8] → Conv(W1,b1) → BN → Relu → Conv(W2,b2) → GlobalAveragePool → Flatten → Gemm(Wf,bf) → y[1,5]."""
    rng = np.random.default_rng(0)
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)
    inits = [
        numpy_helper.from_array(f(C, 3, 3, 3), "w1"), numpy_helper.from_array(f(C), "b1"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, C).astype(np.float32), "bn.scale"),
        numpy_helper.from_array(f(C), "bn.bias"), numpy_helper.from_array(f(C), "bn.mean"),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, C).astype(np.float32), "bn.var"),
        numpy_helper.from_array(f(C, C, 1, 1), "w2"), numpy_helper.from_array(f(C), "b2"),
        numpy_helper.from_array(f(5, C), "wf"), numpy_helper.from_array(f(5), "bf"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["fl"], name="flatten", axis=1),
        helper.make_node("Gemm", ["fl", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "hostile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def node(m, name):
    return next(n for n in m.graph.node if n.name == name)


def init(m, name):
    return next(t for t in m.graph.initializer if t.name == name)


def set_init(m, name, array):
    t = init(m, name)
    t.CopyFrom(numpy_helper.from_array(np.asarray(array), name))


def set_attr(m, node_name, attr, value):
    n = node(m, node_name)
    for a in list(n.attribute):
        if a.name == attr:
            n.attribute.remove(a)
    n.attribute.append(helper.make_attribute(attr, value))


def drop_inputs(m, node_name, keep):
    n = node(m, node_name)
    del n.input[keep:]


def shorten(m, name):
    a = numpy_helper.to_array(init(m, name))
    set_init(m, name, a.reshape(-1)[:-1] if a.ndim == 1 else a[:-1])


def poison(m, name, value, index=0):
    a = numpy_helper.to_array(init(m, name)).copy()
    a.reshape(-1)[index] = value
    set_init(m, name, a)


def float_data_short(m, name):
    t = init(m, name)
    values = numpy_helper.to_array(t).reshape(-1)[:-1]
    t.ClearField("raw_data")
    t.float_data.extend(values.tolist())


def symbolic_input(m, dims):
    shape = m.graph.input[0].type.tensor_type.shape
    for d, v in zip(shape.dim, dims):
        d.Clear()
        if isinstance(v, str):
            d.dim_param = v
        else:
            d.dim_value = v


def reshape_head(m, keep_shape_input):
    """Flatten → Reshape (with or without its shape input)."""
    n = node(m, "flatten")
    n.op_type = "Reshape"
    del n.attribute[:]
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "shape"))
    if keep_shape_input:
        n.input.append("shape")


MUTATIONS = {
    "conv_without_weight": lambda m: drop_inputs(m, "conv2", 1),
    "first_conv_without_weight": lambda m: drop_inputs(m, "conv1", 1),
    "gemm_without_weight": lambda m: drop_inputs(m, "fc", 1),
    "reshape_without_shape": lambda m: reshape_head(m, False),
    "reshape_head": lambda m: reshape_head(m, True),
    "bn_with_three_inputs": lambda m: drop_inputs(m, "bn1", 3),
    "conv_bias_one_short": lambda m: shorten(m, "b1"),
    "second_conv_bias_one_short": lambda m: shorten(m, "b2"),
    "bn_scale_one_short": lambda m: shorten(m, "bn.scale"),
    "bn_var_one_short": lambda m: shorten(m, "bn.var"),
    "gemm_bias_one_short": lambda m: shorten(m, "bf"),
    "gemm_weight_one_row_short": lambda m: shorten(m, "wf"),
    "conv_bias_rank_2": lambda m: set_init(m, "b1", numpy_helper.to_array(init(m, "b1")).reshape(C, 1)),
    "conv_weight_rank_3": lambda m: set_init(m, "w2", numpy_helper.to_array(init(m, "w2")).reshape(C, C, 1)),
    "conv_weight_rank_1": lambda m: set_init(m, "w2", numpy_helper.to_array(init(m, "w2")).reshape(-1)),
    "consumer_weight_wrong_cin": lambda m: set_init(m, "w2", np.ones((C, C + 1, 1, 1), np.float32)),
    "gemm_weight_wrong_k": lambda m: set_init(m, "wf", np.ones((5, C + 2), np.float32)),
    "zero_output_channels": lambda m: set_init(m, "w2", np.ones((0, C, 1, 1), np.float32)),
    "weight_float16": lambda m: set_init(m, "w2", numpy_helper.to_array(init(m, "w2")).astype(np.float16)),
    "bias_int64": lambda m: set_init(m, "b2", np.arange(C, dtype=np.int64)),
    "bias_float_data_short": lambda m: float_data_short(m, "b2"),
    "weight_float_data_short": lambda m: float_data_short(m, "w2"),
    "group_zero": lambda m: set_attr(m, "conv2", "group", 0),
    "group_negative": lambda m: set_attr(m, "conv2", "group", -3),
    "group_huge": lambda m: set_attr(m, "conv2", "group", 2 ** 62),
    "group_not_dividing": lambda m: set_attr(m, "conv2", "group", 3),
    "nan_weight": lambda m: poison(m, "w2", np.nan),
    "inf_weight": lambda m: poison(m, "w2", np.inf),
    "nan_bias": lambda m: poison(m, "b2", np.nan),
    "inf_bias": lambda m: poison(m, "bf", -np.inf),
    "huge_bias": lambda m: poison(m, "b2", 3e38),
    "nan_bn_var": lambda m: poison(m, "bn.var", np.nan),
    "negative_bn_var": lambda m: poison(m, "bn.var", -4.0),
    "batch_minus_one": lambda m: symbolic_input(m, [-1, 3, 8, 8]),
    "all_dims_minus_one": lambda m: symbolic_input(m, [-1, -1, -1, -1]),
    "symbolic_hw": lambda m: symbolic_input(m, ["N", 3, "H", "W"]),
    "zero_dims": lambda m: symbolic_input(m, [0, 0, 0, 0]),
    "huge_dims": lambda m: symbolic_input(m, [1, 3, 2 ** 40, 2 ** 40]),
    "input_rank_2": lambda m: symbolic_input(m, [1, 3]),
    "huge_pads": lambda m: set_attr(m, "conv1", "pads", [2 ** 62] * 4),
    "pads_wrong_length": lambda m: set_attr(m, "conv1", "pads", [1, 1]),
}

INT8 = 'retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 6.0 clip_min: -6.0 } } }\n' \
       'retrain_weight_quant_config { arq_retrain { channel_wise: true } }\n'
IFMR = 'batch_num: 2\nretrain_data_quant_config { ulq_quantize { } }\nretrain_weight_quant_config { arq_retrain { } }\n'
PRUNE = INT8 + 'prune_config { filter_pruner { balanced_l2_norm_filter_prune { prune_ratio: 0.5 ascend_optimized: false } } }\n'
TWO_OF_FOUR = INT8 + 'prune_config { n_out_of_m_pruner { l1_selective_prune { update_freq: 1 } } }\n'

CRASH_TEXT = ("Traceback", "Fatal error", "Stack dump", "backtrace", "Current stack trace", "Illegal instruction",
              "Segmentation fault")


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def check(result, out_dir, what):
    assert result.returncode in (0, 1), f"{what}: exit {result.returncode}\n{result.stderr[-3000:]}"
    for text in CRASH_TEXT:
        assert text not in result.stderr, f"{what}: {text!r} in stderr\n{result.stderr[-3000:]}"
    if result.returncode != 0:
        assert "amct-pipe: error:" in result.stderr, f"{what}: exit {result.returncode} without an error line\n{result.stderr}"
        left = os.listdir(out_dir)
        assert left == [], f"{what}: failed and left {left}"


def commands(tmp, src):
    """(name, argv, output dir, executor involved) for every command on `src`."""
    cfgs = {}
    for name, text in (("int8", INT8), ("ifmr", IFMR), ("prune", PRUNE), ("2of4", TWO_OF_FOUR)):
        cfgs[name] = tmp / f"{name}.cfg"
        cfgs[name].write_text(text)
    npz = tmp / "x.npz"
    np.savez(npz, x=np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32))
    out = lambda name: tmp / f"out_{name}"
    yield "inspect", ["inspect", src], out("inspect"), False
    yield "convert", ["convert", src, "-o", out("convert") / "m.onnx"], out("convert"), False
    yield "plan", ["plan", src, "--cfg", cfgs["prune"]], out("plan"), False
    one = tmp / "x1.npz"  # `run` feeds the whole array: one sample, as the model's fixed batch of 1 says
    np.savez(one, x=np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32))
    yield "run", ["run", src, "--inputs", one, "-o", out("run") / "y.npz"], out("run"), True
    for fmt in ("qdq", "amct"):
        for cfg in ("int8", "prune", "2of4"):
            yield f"compress {cfg} {fmt}", [src, "--cfg", cfgs[cfg], "--format", fmt, "-o", out(f"{cfg}_{fmt}") / "m.onnx"], \
                out(f"{cfg}_{fmt}"), False
    yield "compress ifmr npz", [src, "--cfg", cfgs["ifmr"], "--calib", npz, "-o", out("ifmr_npz") / "m.onnx"], out("ifmr_npz"), True
    yield "compress ifmr random", [src, "--cfg", cfgs["ifmr"], "--calib", "random", "-o", out("ifmr_rand") / "m.onnx"], \
        out("ifmr_rand"), True


def hostile_runs(tmp_path, mutation, executor):
    m = base_model()
    MUTATIONS[mutation](m)
    src = tmp_path / f"{mutation}.onnx"
    src.write_bytes(m.SerializeToString())
    before = digest(src)
    for name, argv, out_dir, uses_executor in commands(tmp_path, src):
        if uses_executor != executor:
            continue
        out_dir.mkdir()
        result = run(*argv, check=False)
        yield name, result, out_dir
        assert digest(src) == before, f"{mutation}: {name} changed the input"


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_hostile_model_every_command(tmp_path, mutation):
    """inspect, convert, plan, and compress (INT8 clips, filter pruning, 2:4; QDQ and AMCT): exit 0 or a clean 1."""
    for name, result, out_dir in hostile_runs(tmp_path, mutation, executor=False):
        check(result, out_dir, f"{mutation}: {name}")


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_hostile_model_executor_commands(tmp_path, mutation):
    """run and compress with calibration (npz, random): no signal; a failure is a clean error with no output."""
    for name, result, out_dir in hostile_runs(tmp_path, mutation, executor=True):
        check(result, out_dir, f"{mutation}: {name}")


def test_base_model_succeeds_everywhere(tmp_path):
    """The unmutated model passes every command, so the failures above come from the mutations."""
    src = tmp_path / "base.onnx"
    src.write_bytes(base_model().SerializeToString())
    for name, argv, out_dir, _ in commands(tmp_path, src):
        out_dir.mkdir()
        result = run(*argv, check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"


@pytest.mark.parametrize("mutation,message", [
    ("conv_without_weight", "its weight (input 1) is missing"),
    ("bn_with_three_inputs", "'bn1'"),
    ("consumer_weight_wrong_cin", "'conv2'"),
    ("conv_bias_one_short", "bias"),
    ("nan_weight", "NaN"),
    ("group_huge", "group"),
])
def test_hostile_prune_errors_name_the_node(tmp_path, mutation, message):
    m = base_model()
    MUTATIONS[mutation](m)
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    cfg = tmp_path / "p.cfg"
    cfg.write_text(PRUNE)
    result = run(src, "--cfg", cfg, "--format", "amct", "-o", tmp_path / "o.onnx", check=False)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("mutation,message", [
    ("nan_bias", "node 'conv2': its bias 'b2' holds nan"),
    ("inf_bias", "node 'fc': its bias 'bf' holds -inf"),
    ("gemm_bias_one_short", "node 'fc': its bias 'bf' has dims [4] (4 values); the layer has 5 output channels"),
    ("inf_weight", "node 'conv2': its weight 'w2' holds inf"),
])
def test_amct_layout_names_the_layer(tmp_path, mutation, message):
    m = base_model()
    MUTATIONS[mutation](m)
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    cfg = tmp_path / "q.cfg"
    cfg.write_text(INT8)
    result = run(src, "--cfg", cfg, "--format", "amct", "-o", tmp_path / "o.onnx", check=False)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr, result.stderr


def write(tmp_path, model, cfg_text):
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    cfg = tmp_path / "c.cfg"
    cfg.write_text(cfg_text)
    return src, cfg


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_non_finite_calibration_data_names_the_layer(tmp_path, fill):
    src, cfg = write(tmp_path, base_model(), IFMR)
    data = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    data[1] = fill  # the second batch (batch_num 2 × 1 sample of 3×8×8) is all NaN or ±inf
    np.savez(tmp_path / "x.npz", x=data)
    r = run(src, "--cfg", cfg, "--calib", tmp_path / "x.npz", "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1, r.stderr
    assert f"amct-pipe: error: node 'conv1': its input 'x' holds 192 NaN/infinite values (of 384) in the calibration " \
           f"run, the first {np.float32(fill)}" in r.stderr, r.stderr
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("clip,column", [("-inf", 81), ("-1e309", 81), ("-3.5e38", 81), ("nan", 81)])
def test_non_finite_clip_is_refused_at_its_place(tmp_path, clip, column):
    text = f"retrain_data_quant_config {{ ulq_quantize {{ clip_max_min {{ clip_max: 6 clip_min: {clip} }} }} }}\n"
    assert text.index(clip) + 1 == column
    src, cfg = write(tmp_path, base_model(), text)
    r = run(src, "--cfg", cfg, "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1 and f"c.cfg:1:{column}: clip_min must be a finite number" in r.stderr, r.stderr


def test_scale_beyond_float16_names_the_layer(tmp_path):
    text = ('fakequant_precision_mode: FORCE_FP16_QUANT\n'
            'retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 1e38 clip_min: -1e38 } } }\n')
    src, cfg = write(tmp_path, base_model(), text)
    r = run(src, "--cfg", cfg, "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 1 and "node 'conv1': its scales do not fit float32/float16" in r.stderr, r.stderr


@pytest.mark.parametrize("same_names", [False, True])
def test_long_chain_compresses(tmp_path, same_names):
    """3,000 1×1 convs (6,000 nodes), also with every node named alike: every pass is linear or n log n (the bench
    times 1k and 100k in release)."""
    import chain
    m = chain.conv_chain(3000)
    if same_names:
        for n in m.graph.node:
            n.name = "n"
    src, cfg = write(tmp_path, m, INT8)
    out = tmp_path / "o.onnx"
    run(src, "--cfg", cfg, "-o", out)
    m = onnx.load(out)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Conv") == 3000 and ops.count("QuantizeLinear") == 3000 and ops.count("DequantizeLinear") == 6000
    added = [n.name for n in m.graph.node if n.op_type != "Conv" and n.op_type != "Relu"]
    assert len(set(added)) == len(added) == 9000
    onnx.checker.check_model(m)


def test_integer_bias_beyond_int32_saturates_with_a_warning(tmp_path):
    m = base_model()
    MUTATIONS["huge_bias"](m)  # b2[0] = 3e38: round(b / (s_w·s_d)) is far beyond INT32
    src, cfg = write(tmp_path, m, INT8)
    r = run(src, "--cfg", cfg, "--format", "amct", "-o", tmp_path / "o.onnx")
    assert "warning: conv2: its integer bias" in r.stdout and "does not fit INT32 and is saturated" in r.stdout, r.stdout
    deploy = onnx.load(tmp_path / "o_deploy_model.onnx")
    bias = next(numpy_helper.to_array(t) for t in deploy.graph.initializer if t.name.startswith("b2") and t.data_type == 6)
    assert bias[0] == 2 ** 31 - 1
