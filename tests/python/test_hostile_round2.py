"""Hostile inputs, second round (issue 19): integer extremes in attributes and constant inputs, epochs and checkpoints
that used to trap; models whose working set exceeds the memory available (refused up front, naming the node); `run`
streaming its data in batches; every output checked against every input by file identity; damaged checkpoints; and
analyze/run/retrain on both npz flavours (np.savez stores members, np.savez_compressed deflates them)."""
import json
import os
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import FIXTURES, run
from test_hostile_models import CRASH_TEXT, base_model, digest, set_attr

INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
MLP = os.path.join(FIXTURES, "digits_mlp.onnx")
MLP_CFG = os.path.join(FIXTURES, "configs", "digits_int8.cfg")
TEST = os.path.join(FIXTURES, "digits_test.npz")
INT8 = 'retrain_data_quant_config { ulq_quantize { clip_max_min { clip_max: 6.0 clip_min: -6.0 } } }\n' \
       'retrain_weight_quant_config { arq_retrain { channel_wise: true } }\n'
IFMR = 'batch_num: 1\nretrain_data_quant_config { ulq_quantize { } }\nretrain_weight_quant_config { arq_retrain { } }\n'


def clean_error(result, *messages):
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "amct-pipe: error:" in result.stderr, result.stderr
    for text in CRASH_TEXT:
        assert text not in result.stderr, result.stderr
    for m in messages:
        assert m in result.stderr, result.stderr


def save(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def one_op(op, x_shape, inits=(), opset=13, **attrs):
    """x → op(x, *initializers) → y, with the initializers given as (name, array)."""
    node = helper.make_node(op, ["x"] + [n for n, _ in inits], ["y"], name="the_op", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run_on(tmp_path, model, x):
    src = save(tmp_path, model)
    np.savez(tmp_path / "x.npz", x=x)
    before = digest(src)
    r = run("run", src, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz", check=False)
    assert digest(src) == before
    if r.returncode != 0:
        assert not (tmp_path / "y.npz").exists()
    return r


X = np.arange(192, dtype=np.float32).reshape(1, 3, 8, 8) / 100

# --- traps: INT64_MIN attributes -------------------------------------------------------------------------------

@pytest.mark.parametrize("node_name,attr,value", [
    ("conv1", "group", INT64_MIN), ("conv1", "pads", [INT64_MIN] * 4), ("conv1", "kernel_shape", [INT64_MIN, 3]),
    ("conv1", "dilations", [INT64_MIN, 1]), ("conv1", "strides", [1, INT64_MIN]), ("flatten", "axis", INT64_MIN),
])
def test_int64_min_attribute_is_an_error(tmp_path, node_name, attr, value):
    m = base_model()
    set_attr(m, node_name, attr, value)
    clean_error(run_on(tmp_path, m, X), f"attribute {attr}", "out of range")
    cfg = tmp_path / "c.cfg"
    cfg.write_text(IFMR)  # clips from calibration: compress runs the executor too
    r = run(tmp_path / "m.onnx", "--cfg", cfg, "--calib", tmp_path / "x.npz", "-o", tmp_path / "o.onnx", check=False)
    clean_error(r, f"'{node_name}'")  # compress may find the layer's geometry wrong first: any clean error naming it
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("op,attrs", [("Cast", {"to": INT64_MIN}), ("MaxPool", {"kernel_shape": [2, 2], "pads": [INT64_MIN] * 4}),
                                      ("AveragePool", {"kernel_shape": [2, 2], "strides": [INT64_MIN, 1]})])
def test_int64_min_attribute_of_other_ops(tmp_path, op, attrs):
    clean_error(run_on(tmp_path, one_op(op, [1, 3, 8, 8], **attrs), X), "out of range")


# --- traps: overflowing set-up arithmetic ------------------------------------------------------------------------

def test_pad_of_two_to_the_62_is_an_error(tmp_path):
    m = one_op("Pad", [1, 3, 8, 8], [("pads", np.array([0, 0, 2 ** 62, 2 ** 62] * 2, np.int64))])
    clean_error(run_on(tmp_path, m, X), "node 'the_op'", "overflows")


@pytest.mark.parametrize("starts,ends,steps,expected", [
    ([INT64_MAX], [INT64_MIN], [INT64_MIN], X[..., 7:8]),  # from the last element backwards, one step: one element
    ([INT64_MIN], [INT64_MAX], [INT64_MAX], X[..., 0:1]),
    ([0], [INT64_MAX], [2 ** 62], X[..., 0:1]),
    ([INT64_MAX], [INT64_MAX], [1], X[..., 8:]),
])
def test_slice_with_integer_extremes_runs(tmp_path, starts, ends, steps, expected):
    inits = [("starts", np.array(starts, np.int64)), ("ends", np.array(ends, np.int64)),
             ("axes", np.array([3], np.int64)), ("steps", np.array(steps, np.int64))]
    r = run_on(tmp_path, one_op("Slice", [1, 3, 8, 8], inits), X)
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npz")["y"]
    assert y.shape == expected.shape and np.array_equal(y, expected)


def test_reshape_with_huge_target_is_an_error(tmp_path):
    m = one_op("Reshape", [1, 3, 8, 8], [("shape", np.array([2 ** 62, -1, 4], np.int64))])
    clean_error(run_on(tmp_path, m, X), "node 'the_op'", "cannot reshape")


@pytest.mark.parametrize("op,inits,attrs", [
    ("Split", [("split", np.array([INT64_MAX, INT64_MAX], np.int64))], {"axis": 1}),
    ("Expand", [("shape", np.array([0, 2 ** 62, 4, 4], np.int64))], {}),
    ("Pad", [("pads", np.array([0, 0, INT64_MAX, 0, 0, 0, INT64_MAX, 0], np.int64))], {}),
    ("Slice", [("starts", np.zeros(5, np.int64)), ("ends", np.ones(5, np.int64))], {}),  # 5 starts, rank 4 (fuzz)
])
def test_constant_inputs_at_integer_extremes_are_errors(tmp_path, op, inits, attrs):
    clean_error(run_on(tmp_path, one_op(op, [1, 3, 8, 8], inits, **attrs), X), "node 'the_op'")


@pytest.mark.parametrize("attr,value", [("dilations", [2 ** 39, 2 ** 39]), ("strides", [2 ** 40 - 1, 1]),
                                        ("pads", [2 ** 40 - 1] * 4)])
def test_conv_geometry_at_the_attribute_bound_is_clean(tmp_path, attr, value):
    m = base_model()
    set_attr(m, "conv1", attr, value)
    r = run_on(tmp_path, m, X)
    assert r.returncode in (0, 1) and not any(t in r.stderr for t in CRASH_TEXT), r.stderr
    if r.returncode:
        clean_error(r, "node 'conv1'")


@pytest.mark.parametrize("op,attrs,outputs", [("Squeeze", {"axes": [0]}, 1), ("Concat", {"axis": 0}, 1),
                                              ("Split", {"axis": 0}, 2), ("Softmax", {"axis": 0}, 1)])
def test_axis_of_a_scalar_is_an_error(tmp_path, op, attrs, outputs):
    """Found by FuzzPrepare: ops indexing a rank-0 input's shape with axis 0."""
    node = helper.make_node(op, ["x"], [f"y{i}" for i in range(outputs)], name="the_op", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                              [helper.make_tensor_value_info("y0", TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    m.ir_version = 7
    src = save(tmp_path, m)
    np.save(tmp_path / "x.npy", np.float32(1))
    clean_error(run("run", src, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npz", check=False), "node 'the_op'")


# --- traps in retraining ---------------------------------------------------------------------------------------

def slice_model():
    """x[N,64] → Gemm(w) → Slice(axis 1, steps 2^62: one column) → Mul by ones → y[N,1]: the Slice gradient runs."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 64)).astype(np.float32) * 0.1, "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(np.array([0], np.int64), "starts"),
             numpy_helper.from_array(np.array([8], np.int64), "ends"),
             numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(np.array([2 ** 62], np.int64), "steps")]
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1),
             helper.make_node("Slice", ["h", "starts", "ends", "axes", "steps"], ["y"], name="slice")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_slice_gradient_with_huge_step_trains(tmp_path):
    src = save(tmp_path, slice_model())
    cfg = tmp_path / "c.cfg"
    cfg.write_text(INT8.replace("channel_wise: true", "channel_wise: false"))
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    r = run("retrain", src, "--cfg", cfg, "--data", tmp_path / "d.npz", "-o", tmp_path / "o.onnx", "--batch-size", 8,
            "--epochs", 1, "--quiet", check=False)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.onnx").exists()


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    d = np.load(os.path.join(FIXTURES, "digits_train.npz"))
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, input=d["input"][:64], label=d["label"][:64])
    return path


def retrain_mlp(tmp_path, data, *extra):
    return run("retrain", MLP, "--cfg", MLP_CFG, "--data", data, "--labels", "label", "-o", tmp_path / "r.onnx",
               "--batch-size", 32, "--quiet", *extra, check=False)


def test_epochs_int64_max_with_steps_ends_at_the_steps(tmp_path, small_data):
    r = retrain_mlp(tmp_path, small_data, f"--epochs={INT64_MAX}", "--steps", 3, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["retrain"]["steps"] == 3


# --- checkpoints -----------------------------------------------------------------------------------------------

def checksum(arrays):
    """What amct-pipe stores in a checkpoint's `checksum` array (NumpyArchive.checksum)."""
    crc = 0
    for name in sorted(arrays):
        a = arrays[name]
        crc = zlib.crc32(f"{name}\0[{', '.join(map(str, a.shape))}]\0".encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return crc


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_data):
    folder = tmp_path_factory.mktemp("ckpt")
    r = retrain_mlp(folder, small_data, "--epochs", 2, "--checkpoint", folder / "c")
    assert r.returncode == 0, r.stderr
    return dict(np.load(folder / "c" / "checkpoint.npz"))


def resume_from(tmp_path, small_data, arrays, reseal=True):
    arrays = dict(arrays)
    if reseal:
        arrays["checksum"] = np.array([checksum({k: v for k, v in arrays.items() if k != "checksum"})], np.int64)
    (tmp_path / "c").mkdir()
    np.savez(tmp_path / "c" / "checkpoint.npz", **arrays)
    return retrain_mlp(tmp_path, small_data, "--epochs", 3, "--resume", tmp_path / "c")


def with_record(arrays, **changes):
    record = json.loads(bytes(arrays["record"].astype(np.uint8)))
    record.update(changes)
    return {**arrays, "record": np.frombuffer(json.dumps(record).encode(), np.uint8).astype(np.int64)}


def test_intact_checkpoint_resumes(tmp_path, small_data, checkpoint):
    r = resume_from(tmp_path, small_data, checkpoint, reseal=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("changes", [{"epochsDone": -1}, {"epochsDone": 2 ** 62}, {"step": -5}, {"bestEpoch": 9}])
def test_record_out_of_range_is_an_error(tmp_path, small_data, checkpoint, changes):
    clean_error(resume_from(tmp_path, small_data, with_record(checkpoint, **changes)), "is damaged", "record")


@pytest.mark.parametrize("version", [0, 1, 3, -1])
def test_record_of_another_version_is_an_error(tmp_path, small_data, checkpoint, version):
    clean_error(resume_from(tmp_path, small_data, with_record(checkpoint, version=version)), f"version {version}")


@pytest.mark.parametrize("name,index", [("value.0", 0), ("value.0", 300), ("first.1", 3), ("record", 5)])
def test_flipped_bit_is_an_error(tmp_path, small_data, checkpoint, name, index):
    arrays = dict(checkpoint)
    a = arrays[name].copy()
    a.view(np.uint8).reshape(-1)[index * a.itemsize] ^= 0x10
    arrays[name] = a
    clean_error(resume_from(tmp_path, small_data, arrays, reseal=False), "checkpoint")


def test_checkpoint_without_checksum_is_an_error(tmp_path, small_data, checkpoint):
    arrays = {k: v for k, v in checkpoint.items() if k != "checksum"}
    clean_error(resume_from(tmp_path, small_data, arrays, reseal=False), "checksum")


# --- outputs that would replace an input ---------------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    """The digits MLP, its config, 8 samples of data (twice), a symlink to the data, a folder."""
    d = np.load(TEST)
    (tmp_path / "m.onnx").write_bytes(open(MLP, "rb").read())
    (tmp_path / "c.cfg").write_text(open(MLP_CFG).read())
    np.savez(tmp_path / "x.npz", input=d["input"][:8], label=d["label"][:8])
    np.savez(tmp_path / "v.npz", input=d["input"][8:16], label=d["label"][8:16])
    os.symlink("x.npz", tmp_path / "link.npz")
    (tmp_path / "rep").mkdir()
    return tmp_path


RETRAIN = ["retrain", "m.onnx", "--cfg", "c.cfg", "--labels", "label", "--quiet", "--batch-size", "4", "--epochs", "1"]
CONFLICTS = [
    (["run", "m.onnx", "--inputs", "x.npz", "-o", "m.onnx"], "m.onnx", "the input model"),
    (["run", "m.onnx", "--inputs", "x.npz", "-o", "x.npz"], "x.npz", "--inputs"),
    (["run", "m.onnx", "--inputs", "x.npz", "-o", "./x.npz"], "./x.npz", "--inputs"),
    (["run", "m.onnx", "--inputs", "x.npz", "-o", "link.npz"], "link.npz", "--inputs"),
    (["run", "m.onnx", "--inputs", "link.npz", "-o", "rep/../x.npz"], "rep/../x.npz", "--inputs"),
    (["m.onnx", "--cfg", "c.cfg", "--calib", "x.npz", "-o", "x.npz"], "x.npz", "--calib"),
    (["m.onnx", "--cfg", "c.cfg", "-o", "c.cfg"], "c.cfg", "--cfg"),
    (["m.onnx", "--cfg", "c.cfg", "-o", "./m.onnx"], "./m.onnx", "the input model"),
    (["m.onnx", "--cfg", "c.cfg", "-o", "o.onnx", "--record", "m.onnx"], "m.onnx", "the input model"),
    (["m.onnx", "--cfg", "c.cfg", "-o", "o.onnx", "--record", "o.onnx"], "o.onnx", "are one file"),
    (["m.onnx", "--cfg", "c.cfg", "--format", "amct", "-o", "x"], "x_deploy_model.onnx", "--calib"),
    (RETRAIN + ["--data", "x.npz", "-o", "x.npz"], "x.npz", "--data"),
    (RETRAIN + ["--data", "x.npz", "--val", "v.npz", "-o", "o.onnx", "--record", "v.npz"], "v.npz", "--val"),
    (RETRAIN + ["--data", "rep/checkpoint.npz", "-o", "o.onnx", "--checkpoint", "rep"], "rep/checkpoint.npz", "--data"),
    (["analyze", "m.onnx", "--cfg", "c.cfg", "--calib", "x.npz", "--suggest", "c.cfg", "--min-sqnr", "20"], "c.cfg", "--cfg"),
    (["analyze", "m.onnx", "--cfg", "c.cfg", "--calib", "rep/report.json", "--report", "rep"], "rep/report.json", "--calib"),
]


@pytest.mark.parametrize("argv,output,input_what", CONFLICTS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_output_that_would_replace_an_input_is_refused(files, argv, output, input_what, monkeypatch):
    monkeypatch.chdir(files)
    if "rep/checkpoint.npz" in argv:
        os.replace("v.npz", "rep/checkpoint.npz")
    if "rep/report.json" in argv:
        os.replace("v.npz", "rep/report.json")
    if "x_deploy_model.onnx" == output:  # the AMCT layout writes x_deploy_model.onnx: make that the calibration data
        os.replace("v.npz", "x_deploy_model.onnx")
        argv = argv[:3] + ["--calib", "x_deploy_model.onnx"] + argv[3:]
    before = {p: digest(p) for p in os.listdir(".") if os.path.isfile(p)}
    r = run(*argv, check=False)
    clean_error(r, output, input_what)
    assert {p: digest(p) for p in os.listdir(".") if os.path.isfile(p)} == before


def test_resume_and_checkpoint_in_one_folder_is_allowed(files, monkeypatch):
    monkeypatch.chdir(files)
    run(*RETRAIN, "--data", "x.npz", "-o", "o.onnx", "--checkpoint", "ck")
    r = run(*RETRAIN, "--data", "x.npz", "-o", "o2.onnx", "--checkpoint", "ck", "--resume", "ck", "--epochs", "2",
            check=False)
    assert r.returncode == 0, r.stderr


# --- memory: refused up front ----------------------------------------------------------------------------------

def conv_pad(pad):
    """The campaign's 526-byte model: x[1,1,8,8] → Conv(4 filters) → Pad(`pad` on each side of H and W) → y."""
    w = np.full((4, 1, 3, 3), 0.1, np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Pad", ["c", "pads"], ["y"], name="pad")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(w, "w"),
                                           numpy_helper.from_array(np.array([0, 0, pad, pad] * 2, np.int64), "pads")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def run_with_memory(tmp_path, model, limit, *extra):
    src = save(tmp_path, model)
    np.savez(tmp_path / "x.npz", x=np.ones((1, 1, 8, 8), np.float32))
    env = {**os.environ, "AMCT_PIPE_MAX_MEMORY_BYTES": limit}
    import subprocess
    from conftest import binary
    return subprocess.run([binary(), "run", src, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz", *extra],
                          capture_output=True, text=True, env=env, timeout=120)


def test_working_set_over_the_memory_available_is_refused_naming_the_node(tmp_path):
    r = run_with_memory(tmp_path, conv_pad(8000), "256M")  # the Pad's output alone is 3.8 GiB
    clean_error(r, "node 'pad'", "of memory is available")
    assert not (tmp_path / "y.npz").exists()


def test_working_set_within_the_memory_available_runs(tmp_path):
    r = run_with_memory(tmp_path, conv_pad(20), "256M")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "y.npz")["y"].shape == (1, 4, 48, 48)


def test_value_over_the_machine_is_refused_without_a_limit(tmp_path):
    r = run_with_memory(tmp_path, conv_pad(2 ** 20), "1T")
    clean_error(r, "node 'pad'", "larger than this machine's memory allows")


# --- run streams its data in batches ---------------------------------------------------------------------------

def test_run_streams_batches_and_concatenates_in_order(tmp_path):
    import onnxruntime as ort
    x = np.load(TEST)["input"][:50]
    np.savez(tmp_path / "x.npz", input=x)
    want = ort.InferenceSession(MLP, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    for extra in ([], ["--batch-size", "7"], ["--batch-size", "50"], ["--batch-size", "1000"]):
        run("run", MLP, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz", *extra)
        got = np.load(tmp_path / "y.npz")["logits"]
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-4), extra


def test_run_takes_a_fixed_batch_model_one_batch_at_a_time(tmp_path):
    import onnxruntime as ort
    src = save(tmp_path, base_model())  # x[1,3,8,8]
    x = np.random.default_rng(2).standard_normal((5, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    run("run", src, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    want = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(5)])
    assert np.allclose(np.load(tmp_path / "y.npz")["y"], want, atol=1e-4)


def test_run_refuses_to_concatenate_outputs_without_a_batch_axis(tmp_path):
    node = helper.make_node("ReduceMean", ["x"], ["y"], name="mean", keepdims=0, axes=[0])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    src = save(tmp_path, m)
    np.savez(tmp_path / "x.npz", x=np.ones((10, 4), np.float32))
    clean_error(run("run", src, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz", "--batch-size", 3,
                    check=False), "not batched along axis 0")
    run("run", src, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz", "--batch-size", 10)
    assert np.load(tmp_path / "y.npz")["y"].shape == (4,)


# --- both npz flavours -----------------------------------------------------------------------------------------

@pytest.fixture(params=["savez", "savez_compressed"])
def flavour(request, tmp_path):
    d = np.load(TEST)
    path = tmp_path / f"{request.param}.npz"
    getattr(np, request.param)(path, input=d["input"][:32], label=d["label"][:32])
    return path


@pytest.mark.parametrize("batch", ["1", "8"])
def test_analyze_reads_both_npz_flavours(tmp_path, flavour, batch):
    r = run("analyze", MLP, "--cfg", MLP_CFG, "--calib", flavour, "--batch-size", batch, "--json", check=False)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["layers"]) == 3


def test_run_and_retrain_read_both_npz_flavours(tmp_path, flavour):
    run("run", MLP, "--inputs", flavour, "-o", tmp_path / "y.npz")
    assert np.load(tmp_path / "y.npz")["logits"].shape == (32, 10)
    r = run("retrain", MLP, "--cfg", MLP_CFG, "--data", flavour, "--labels", "label", "-o", tmp_path / "r.onnx",
            "--batch-size", 8, "--epochs", 1, "--quiet", check=False)
    assert r.returncode == 0, r.stderr


def test_constant_of_shape_past_the_memory_available_is_refused_before_it_is_made(tmp_path):
    """Found by FuzzPrepare: ConstantOfShape's value is made while planning, before the plan's own memory check."""
    node = helper.make_node("ConstantOfShape", ["shape"], ["y"], name="big")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.array([1 << 28], np.int64), "shape")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    clean_error(run_with_memory(tmp_path, m, "256M"), "node 'big'", "of memory is available")


def test_a_list_of_a_million_pads_is_refused_quickly(tmp_path):
    """Found by FuzzPrepare: a message printing a million-value list took longer than the fuzzer's timeout."""
    m = one_op("Pad", [1, 3, 8, 8], [("pads", np.zeros(1 << 20, np.int64))])
    clean_error(run_on(tmp_path, m, X), "node 'the_op'", "holds 1048576 values")


def test_matmul_of_an_empty_output_with_many_batches_is_quick(tmp_path):
    """Found by FuzzPrepare: MatMul built one offset per batch even when the output is empty (2^28 of them here)."""
    import time
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 0, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.ones((2, 3), np.float32), "b")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    src = save(tmp_path, m)
    np.savez(tmp_path / "a.npz", a=np.zeros((1 << 28, 0, 2), np.float32))
    start = time.monotonic()
    run("run", src, "--inputs", tmp_path / "a.npz", "-o", tmp_path / "y.npz", "--batch-size", 1 << 28)
    assert time.monotonic() - start < 20
    assert np.load(tmp_path / "y.npz")["y"].shape == (1 << 28, 0, 3)
