"""Hostile inputs to the loaders, each class generated on the fly: shapes and sizes the file declares (tensor dims,
typed-field counts, zip and .npy headers), external data that escapes the model's folder through a symlink, and
names that would garble or flood an error message. Every case must end with exit 1 and `amct-pipe: error:`, never a
trap or a traceback, write no output, and leave the input unchanged."""
import os
import resource
import struct
import subprocess
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from canonical import canonical, initializer_arrays
from conftest import FIXTURES, binary

# A child that tried to allocate what a header claims (4 GiB and more) dies under this address-space limit.
ADDRESS_LIMIT = 3 << 30


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def fails(args, inputs, expected, env=None, output=None):
    """Runs amct-pipe; checks it failed cleanly, wrote no `output`, and left every file in `inputs` as it was."""
    before = {p: open(p, "rb").read() for p in inputs}
    result = subprocess.run([binary(), *map(str, args)], capture_output=True, timeout=300, preexec_fn=limited,
                            env={**os.environ, **(env or {})})
    stderr = result.stderr.decode("utf-8")  # must be UTF-8 whatever bytes the input held
    assert result.returncode == 1, f"exit {result.returncode}:\n{stderr[:3000]}"
    assert "amct-pipe: error:" in stderr, stderr[:3000]
    for marker in ("Traceback", "Fatal error", "backtrace", "Crash", "Illegal instruction"):
        assert marker not in stderr, stderr[:3000]
    assert expected in stderr, stderr[:3000]
    if output is not None:
        assert not os.path.exists(output), f"{output} was written"
        leftovers = [f for f in os.listdir(os.path.dirname(output)) if ".tmp-" in f]
        assert leftovers == [], leftovers
    for p, data in before.items():
        assert open(p, "rb").read() == data, f"{p} changed"
    return stderr


def model_with(initializers, nodes=None, inputs=None, outputs=None):
    nodes = nodes or [helper.make_node("Identity", ["x"], ["y"], name="id")]
    graph = helper.make_graph(nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                              initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def every_command_fails(tmp_path, model_bytes, expected):
    """inspect, convert, plan, compress and run on the model all fail with `expected`."""
    src = tmp_path / "hostile.onnx"
    src.write_bytes(model_bytes)
    out = tmp_path / "out.onnx"
    cfg = os.path.join(FIXTURES, "configs", "quant.cfg")
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=np.zeros(1, np.float32))
    for args in (["inspect", src], ["convert", src, "-o", out], ["convert", src, "-o", out, "--inline-data"],
                 ["plan", src, "--cfg", cfg], [src, "--cfg", cfg, "-o", out],
                 [src, "--cfg", cfg, "-o", out, "--calib", inputs]):
        fails(args, [src], expected, output=out)
    npz_out = tmp_path / "y.npz"
    fails(["run", src, "--inputs", inputs, "-o", npz_out], [src, inputs], expected, output=npz_out)


def tensor(name, data_type, dims, **fields):
    t = TensorProto(name=name, data_type=data_type, dims=dims)
    for key, values in fields.items():
        if key == "raw_data":
            t.raw_data = values
        else:
            getattr(t, key).extend(values)
    return t


# Shapes and counts the file declares.

@pytest.mark.parametrize("dims", [[2**32, 2**32, 4], [2**62], [2**31, 2**31, 2**31], [3, 2**61]])
def test_dims_whose_product_overflows(tmp_path, dims):
    m = model_with([tensor("w", TensorProto.FLOAT, dims, raw_data=b"\0" * 16)])
    every_command_fails(tmp_path, m.SerializeToString(), "tensor 'w': dims")


@pytest.mark.parametrize("dims", [[-1], [4, -2], [-(2**63)]])
def test_negative_dims(tmp_path, dims):
    m = model_with([tensor("w", TensorProto.FLOAT, dims, float_data=[1.0])])
    every_command_fails(tmp_path, m.SerializeToString(), "negative dimension")


@pytest.mark.parametrize("data_type,field,values", [
    (TensorProto.FLOAT, "float_data", [1.0, 2.0, 3.0]),
    (TensorProto.INT64, "int64_data", [1, 2, 3, 4, 5]),
    (TensorProto.INT32, "int32_data", [1]),
    (TensorProto.INT8, "int32_data", [1, 2, 3]),
    (TensorProto.FLOAT16, "int32_data", [1, 2, 3, 4, 5, 6]),
    (TensorProto.DOUBLE, "double_data", [1.0]),
    (TensorProto.UINT64, "uint64_data", [1, 2]),
    (TensorProto.COMPLEX64, "float_data", [1.0, 2.0, 3.0, 4.0]),
])
def test_typed_field_count_that_does_not_match_the_dims(tmp_path, data_type, field, values):
    m = model_with([tensor("bias", data_type, [4], **{field: values})])
    every_command_fails(tmp_path, m.SerializeToString(), f"tensor 'bias': {field} holds {len(values)} values")


def test_huge_initializer_without_bytes(tmp_path):
    m = model_with([tensor("huge", TensorProto.FLOAT, [10**6, 10**6])])
    every_command_fails(tmp_path, m.SerializeToString(), "tensor 'huge': holds no data")


def test_short_tensor_inside_a_constant_node(tmp_path):
    value = tensor("c", TensorProto.FLOAT, [3], float_data=[1.0, 2.0])
    nodes = [helper.make_node("Constant", [], ["c"], name="const", value=value),
             helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    m = model_with([], nodes=nodes, outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    every_command_fails(tmp_path, m.SerializeToString(), "tensor 'c': float_data holds 2 values")


def test_every_fixture_still_loads_and_matches_numpy(tmp_path):
    """The checks refuse nothing valid: each fixture converts, and its initializers equal onnx's reading."""
    for name in sorted(os.listdir(FIXTURES)):
        if not name.endswith(".onnx"):
            continue
        out = tmp_path / name
        result = subprocess.run([binary(), "convert", os.path.join(FIXTURES, name), "-o", out, "--inline-data"],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        ours = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
        theirs = initializer_arrays(canonical(onnx.load(os.path.join(FIXTURES, name))))
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key])


# External data through symlinks.

def external_model(folder, location, values):
    t = numpy_helper.from_array(values, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    m = model_with([t], nodes=[helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                   outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [values.size])])
    path = folder / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def test_symlink_to_a_file_outside_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(secret, folder / "link.bin")
    src = external_model(folder, "link.bin", np.zeros(4, np.float32))
    out = folder / "out.onnx"
    for args in (["convert", src, "-o", out, "--inline-data"], ["inspect", src]):
        fails(args, [src, secret], "outside the model's folder", output=out)


def test_symlinked_folder_pointing_outside_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "sub")
    src = external_model(folder, "sub/w.bin", np.zeros(4, np.float32))
    out = folder / "out.onnx"
    fails(["convert", src, "-o", out, "--inline-data"], [src], "outside the model's folder", output=out)


def test_symlink_inside_the_folder_is_followed(tmp_path):
    folder = tmp_path / "model"
    (folder / "data").mkdir(parents=True)
    values = np.array([1.5, -2.0, 3.25, 7.0], np.float32)
    (folder / "data" / "real.bin").write_bytes(values.tobytes())
    os.symlink("data/real.bin", folder / "link.bin")
    src = external_model(folder, "link.bin", values)
    out = tmp_path / "out.onnx"
    result = subprocess.run([binary(), "convert", src, "-o", out, "--inline-data"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(numpy_helper.to_array(onnx.load(str(out)).graph.initializer[0]), values)


# .npy / .npz whose headers lie.

def npy(dtype="<f4", shape="(2, 3)", data=None, major=1):
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    size = struct.pack("<H", len(header)) if major == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + size + header + (data if data is not None else b"\0" * 24)


def zip_bytes(name, payload, method=8, declared=None, compressed=None, name_length=None):
    """A one-member zip; `declared`/`compressed` override the sizes the headers state."""
    body = payload
    if method == 8:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = c.compress(payload) + c.flush()
    fname = name.encode()
    size = len(payload) if declared is None else declared
    csize = len(body) if compressed is None else compressed
    crc = zlib.crc32(payload)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, csize, size, len(fname), 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, csize, size,
                          len(fname) if name_length is None else name_length, 0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    return local + body + central + end


def gemm_model(tmp_path):
    """x[1,3] → MatMul(w) → y: a model `run` can execute."""
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    m = model_with([w], nodes=[helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                   outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    path = tmp_path / "mm.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def run_fails(tmp_path, data, expected, suffix=".npz", env=None):
    src = gemm_model(tmp_path)
    inputs = tmp_path / ("inputs" + suffix)
    inputs.write_bytes(data)
    out = tmp_path / "y.npz"
    return fails(["run", src, "--inputs", inputs, "-o", out], [src, inputs], expected, env=env, output=out)


def test_npz_good_member_runs(tmp_path):
    """The generator below writes zips numpy reads, and amct-pipe computes x @ w from them."""
    x = np.array([[1.0, 2.0, 4.0]], np.float32)
    inputs = tmp_path / "x.npz"
    inputs.write_bytes(zip_bytes("x.npy", npy(shape="(1, 3)", data=x.tobytes())))
    assert np.array_equal(np.load(inputs)["x"], x)
    out = tmp_path / "y.npz"
    result = subprocess.run([binary(), "run", gemm_model(tmp_path), "--inputs", inputs, "-o", out],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(out)["y"], x @ np.ones((3, 2), np.float32))


def test_zip_header_claiming_4_gib(tmp_path):
    data = zip_bytes("x.npy", npy(shape="(1, 3)", data=b"\0" * 12), declared=0xFFFFFFFE)
    assert len(data) < 3000
    run_fails(tmp_path, data, "the zip says 4294967294 bytes")


def test_npy_header_claiming_4_gb_in_a_small_stream(tmp_path):
    """Zip and .npy headers agree on 4 GB, but 200 compressed bytes cannot hold it: refused before allocating."""
    header = npy(shape="(1, 1000000000)", data=b"")
    data = zip_bytes("x.npy", header + b"\0" * 64, declared=len(header) + 4 * 10**9)
    run_fails(tmp_path, data, "compressed bytes cannot hold")


def test_zip_bomb_is_bounded_by_the_npy_header(tmp_path):
    """A member that inflates to 256 MiB although its header describes 12 bytes stops at the 12."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    header = npy(shape="(1, 3)", data=b"")
    body = c.compress(header) + b"".join(c.compress(b"\0" * (1 << 20)) for _ in range(256)) + c.flush()
    total = len(header) + (256 << 20)
    fname = b"x.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(body), len(header) + 12, 5, 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, 0, len(body), len(header) + 12, 5,
                          0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(body), 0)
    assert len(body) < total // 500
    run_fails(tmp_path, local + body + central + end, "inflates to more than")


def test_consistent_bomb_over_the_input_limit(tmp_path):
    payload = npy(shape="(1, 3, 16777216)", data=b"\0" * (3 * 16777216 * 4))  # 192 MiB of zeros, ~200 KB deflated
    err = run_fails(tmp_path, zip_bytes("x.npy", payload), "over the input limit",
                    env={"AMCT_PIPE_MAX_INPUT_BYTES": "64M"})
    assert "AMCT_PIPE_MAX_INPUT_BYTES" in err


def test_truncated_deflate_entry(tmp_path):
    data = bytearray(zip_bytes("x.npy", npy(shape="(1, 3)", data=np.arange(3, dtype=np.float32).tobytes())))
    # Cut the deflate stream short, keeping the central directory (its offsets move with the cut).
    whole = bytes(data)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(npy(shape="(1, 3)", data=np.arange(3, dtype=np.float32).tobytes())) + c.flush()
    cut = body[: len(body) // 2]
    payload_size = len(npy(shape="(1, 3)", data=b"\0" * 12))
    fname = b"x.npy"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, 0, len(cut), payload_size, 5, 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, 0, len(cut), payload_size, 5,
                          0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(cut), 0)
    assert whole != local + cut + central + end
    err = run_fails(tmp_path, local + cut + central + end, "truncated")
    assert "zlib status" not in err


def test_zip_name_length_65535(tmp_path):
    run_fails(tmp_path, zip_bytes("x.npy", npy(shape="(1, 3)", data=b"\0" * 12), name_length=65535),
              "damaged zip central directory")


def test_stored_member_size_past_the_end(tmp_path):
    run_fails(tmp_path, zip_bytes("x.npy", npy(shape="(1, 3)", data=b"\0" * 12), method=0, compressed=1 << 30,
                                  declared=1 << 30), "truncated")


@pytest.mark.parametrize("shape,expected", [
    ("(-1, 3)", "not a dimension"),
    ("(1, -3)", "not a dimension"),
    ("(4294967296, 4294967296, 4)", "more elements than fit"),
    ("(9223372036854775807, 2)", "more elements than fit"),
    ("(99999999999999999999999,)", "not a dimension"),
    ("(1, x)", "not a dimension"),
    (")(", "no shape"),
])
def test_npy_shapes_that_lie(tmp_path, shape, expected):
    run_fails(tmp_path, npy(shape=shape, data=b"\0" * 12), expected, suffix=".npy")
    run_fails(tmp_path, zip_bytes("x.npy", npy(shape=shape, data=b"\0" * 12)), expected)


def test_npy_shorter_than_its_header(tmp_path):
    run_fails(tmp_path, b"\x93NUMPY\x02\x00\xff", "truncated .npy header", suffix=".npy")
    run_fails(tmp_path, npy(shape="(1, 3)", data=b"\0" * 5), "holds 5 bytes of data", suffix=".npy")


# Names echoed in messages.

def test_control_bytes_in_a_name_are_escaped(tmp_path):
    node = helper.make_node("Relu", ["gh\x1b[2Jost"], ["y"], name="evil\x1b]0;title\x07\nnode")
    m = model_with([], nodes=[node])
    src = tmp_path / "m.onnx"
    src.write_bytes(m.SerializeToString())
    err = fails(["inspect", src], [src], "'evil\\x1b]0;title\\x07\\nnode' reads 'gh\\x1b[2Jost'")
    assert "\x1b" not in err and "\x07" not in err
    assert err.count("\n") == 1


def test_non_utf8_name_prints_as_utf8(tmp_path):
    node = helper.make_node("Relu", ["ghostQQ"], ["y"], name="nodeQQ")
    data = model_with([], nodes=[node]).SerializeToString().replace(b"nodeQQ", b"node\xff\xfe")
    src = tmp_path / "m.onnx"
    src.write_bytes(data)
    fails(["inspect", src], [src], "'node\ufffd\ufffd' reads 'ghostQQ'")


def test_huge_unknown_field_name_is_cut(tmp_path):
    cfg = tmp_path / "huge.cfg"
    cfg.write_text("batch_num: 1\n" + "x" * (4 << 20) + ": 3\n")
    src = os.path.join(FIXTURES, "gap_gemm.onnx")
    err = fails(["plan", src, "--cfg", cfg], [cfg], "unknown field 'xxxx")
    assert len(err) < 2000, len(err)
    assert "…" in err
