"""Bad input gets a clear error, a non-zero exit, and no output file (nor a leftover temporary)."""
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import FIXTURES, run


def convert_fails(tmp_path, src, expected):
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir(exist_ok=True)
    result = run("convert", src, "-o", out, check=False)
    assert result.returncode != 0
    assert "amct-pipe: error:" in result.stderr
    assert expected in result.stderr, result.stderr
    assert os.listdir(out.parent) == [], f"left behind: {os.listdir(out.parent)}"
    return result.stderr


def test_missing_file(tmp_path):
    convert_fails(tmp_path, tmp_path / "nope.onnx", "No such file")


def test_empty_file(tmp_path):
    src = tmp_path / "empty.onnx"
    src.write_bytes(b"")
    convert_fails(tmp_path, src, "is empty")


def test_random_bytes(tmp_path):
    src = tmp_path / "random.onnx"
    src.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    convert_fails(tmp_path, src, "not an ONNX model")


def test_truncated_model(tmp_path):
    data = open(os.path.join(FIXTURES, "residual.onnx"), "rb").read()
    src = tmp_path / "truncated.onnx"
    src.write_bytes(data[: len(data) // 2])
    convert_fails(tmp_path, src, "not an ONNX model")


def test_no_graph(tmp_path):
    m = onnx.ModelProto()
    m.ir_version = 8
    src = tmp_path / "nograph.onnx"
    src.write_bytes(m.SerializeToString())
    convert_fails(tmp_path, src, "holds no graph")


def test_undefined_value(tmp_path):
    node = helper.make_node("Relu", ["ghost"], ["y"], name="reads_ghost")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    src = tmp_path / "ghost.onnx"
    src.write_bytes(helper.make_model(g).SerializeToString())
    err = convert_fails(tmp_path, src, "'reads_ghost' reads 'ghost'")
    assert "no node, initializer or graph input produces" in err


def test_raw_data_of_the_wrong_size(tmp_path):
    m = onnx.load(os.path.join(FIXTURES, "gap_gemm.onnx"))
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-4]
    src = tmp_path / "short.onnx"
    src.write_bytes(m.SerializeToString())
    convert_fails(tmp_path, src, "raw_data holds")


def external_copy(tmp_path, mutate):
    for name in ("external_data.onnx", "external_data.onnx.data"):
        shutil.copy(os.path.join(FIXTURES, name), tmp_path / name)
    m = onnx.load(str(tmp_path / "external_data.onnx"), load_external_data=False)
    t = next(t for t in m.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    mutate(t, tmp_path)
    src = tmp_path / "ext.onnx"
    src.write_bytes(m.SerializeToString())
    return src


def set_entry(t, key, value):
    for e in t.external_data:
        if e.key == key:
            e.value = value
            return
    t.external_data.add(key=key, value=value)


def test_external_file_missing(tmp_path):
    src = external_copy(tmp_path, lambda t, d: set_entry(t, "location", "missing.bin"))
    convert_fails(tmp_path, src, "cannot open")


def test_external_file_too_short(tmp_path):
    def shorten(t, d):
        data = (d / "external_data.onnx.data").read_bytes()
        (d / "external_data.onnx.data").write_bytes(data[:100])
    src = external_copy(tmp_path, shorten)
    convert_fails(tmp_path, src, "file too short")


def test_external_absolute_path_refused(tmp_path):
    src = external_copy(tmp_path, lambda t, d: set_entry(t, "location", "/etc/passwd"))
    convert_fails(tmp_path, src, "absolute path")


def test_external_parent_path_refused(tmp_path):
    src = external_copy(tmp_path, lambda t, d: set_entry(t, "location", "../external_data.onnx.data"))
    convert_fails(tmp_path, src, "leaves the model's folder")


def test_output_is_input_refused(tmp_path):
    src = tmp_path / "model.onnx"
    shutil.copy(os.path.join(FIXTURES, "gap_gemm.onnx"), src)
    before = src.read_bytes()
    result = run("convert", src, "-o", src, check=False)
    assert result.returncode != 0 and "never overwrites its input" in result.stderr
    assert src.read_bytes() == before


def test_output_folder_missing(tmp_path):
    result = run("convert", os.path.join(FIXTURES, "gap_gemm.onnx"), "-o", tmp_path / "no" / "such" / "out.onnx", check=False)
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_input_is_never_opened_for_writing(tmp_path):
    src = tmp_path / "ro.onnx"
    shutil.copy(os.path.join(FIXTURES, "residual.onnx"), src)
    os.chmod(src, 0o444)
    run("convert", src, "-o", tmp_path / "out.onnx")
    assert src.read_bytes() == open(os.path.join(FIXTURES, "residual.onnx"), "rb").read()
