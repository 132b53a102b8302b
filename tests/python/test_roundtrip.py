"""`amct-pipe convert` is lossless up to the canonical form (Constant and Identity-of-constant weights become
initializers; tests/python/canonical.py is the reference): the saved model parses to a message equal to the canonical
input, passes the full checker, and onnxruntime gives bit-identical outputs."""
import glob
import os

import numpy as np
import onnx
from onnx import numpy_helper
import pytest

import models
import ortutil
from canonical import canonical, initializer_arrays
from conftest import FIXTURES, run

FIXTURE_MODELS = sorted(glob.glob(os.path.join(FIXTURES, "*.onnx")))


def assert_lossless(src, dst):
    a = canonical(onnx.load(src))
    b = onnx.load(dst)
    if a != b:  # a folded value_float(s)/value_int(s) may be written in another tensor field: compare the values
        a_inits, b_inits = initializer_arrays(a), initializer_arrays(b)
        assert a_inits.keys() == b_inits.keys(), f"{dst}: initializers differ from the canonical {src}"
        for k in a_inits:
            assert a_inits[k].dtype == b_inits[k].dtype and np.array_equal(a_inits[k], b_inits[k]), k
        for m in (a, b):
            del m.graph.initializer[:]
        assert a == b, f"{dst} differs from the canonical form of {src}"
    onnx.checker.check_model(dst, full_check=True)
    feeds = ortutil.inputs_for(src)
    for x, y in zip(ortutil.run(src, feeds), ortutil.run(dst, feeds)):
        assert x.dtype == y.dtype and x.shape == y.shape
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.uint8), y.view(np.uint8)), "outputs are not bit-identical"
        else:
            assert np.array_equal(x, y)


def test_fixtures_exist():
    names = {os.path.basename(p) for p in FIXTURE_MODELS}
    for required in ("conv_bn_relu.onnx", "residual.onnx", "concat_block.onnx", "depthwise.onnx", "gap_gemm.onnx",
                     "matmul_head.onnx", "digits_mlp.onnx", "paddle_constants.onnx", "external_data.onnx",
                     "function_and_sequence.onnx"):
        assert required in names
    for path in FIXTURE_MODELS:
        assert os.path.getsize(path) < 400_000


@pytest.mark.parametrize("path", FIXTURE_MODELS, ids=os.path.basename)
def test_fixture_round_trip(path, tmp_path):
    out = tmp_path / os.path.basename(path)
    run("convert", path, "-o", out)
    assert_lossless(path, str(out))


@pytest.mark.parametrize("path", FIXTURE_MODELS, ids=os.path.basename)
def test_fixture_round_trip_is_byte_identical(path, tmp_path):
    # Stronger than message equality: protobuf-c writes fields in the order onnx's serializer does.
    out = tmp_path / os.path.basename(path)
    run("convert", path, "-o", out)
    expected = canonical(onnx.load(path)).SerializeToString() if path_has_constants(path) else open(path, "rb").read()
    assert expected == open(out, "rb").read()


def path_has_constants(path):
    return canonical(onnx.load(path)) != onnx.load(path)


def test_external_data_round_trip_keeps_the_reference(tmp_path):
    src = os.path.join(FIXTURES, "external_data.onnx")
    out = tmp_path / "external_data.onnx"
    run("convert", src, "-o", out)
    m = onnx.load(str(out), load_external_data=False)
    external = [t for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external, "external tensors were pulled inline"
    assert (tmp_path / "external_data.onnx.data").exists()
    assert_lossless(src, str(out))


def test_external_data_flag_moves_large_tensors(tmp_path):
    src = os.path.join(FIXTURES, "residual.onnx")
    out = tmp_path / "residual_ext.onnx"
    run("convert", src, "-o", out, "--external-data", "--threshold", "1024")
    m = onnx.load(str(out), load_external_data=False)
    moved = [t.name for t in m.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    big = [t.name for t in onnx.load(src).graph.initializer if len(t.raw_data) >= 1024]
    assert sorted(moved) == sorted(big) and moved
    assert os.path.getsize(out) < 20_000
    onnx.checker.check_model(str(out), full_check=True)
    a, b = onnx.load(src), onnx.load(str(out))
    for ta, tb in zip(a.graph.initializer, b.graph.initializer):
        assert np.array_equal(onnx.numpy_helper.to_array(ta), onnx.numpy_helper.to_array(tb))
    feeds = ortutil.inputs_for(src)
    for x, y in zip(ortutil.run(src, feeds), ortutil.run(str(out), feeds)):
        assert np.array_equal(x, y)


def test_saving_beside_the_input_never_touches_its_external_file(tmp_path):
    import shutil
    for name in ("external_data.onnx", "external_data.onnx.data"):
        shutil.copy(os.path.join(FIXTURES, name), tmp_path / name)
    before = (tmp_path / "external_data.onnx.data").read_bytes()
    run("convert", tmp_path / "external_data.onnx", "-o", tmp_path / "copy.onnx")
    assert (tmp_path / "external_data.onnx.data").read_bytes() == before
    m = onnx.load(str(tmp_path / "copy.onnx"), load_external_data=False)
    locations = {e.value for t in m.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"copy.onnx.data"}
    assert_values_equal(str(tmp_path / "external_data.onnx"), str(tmp_path / "copy.onnx"))


def assert_values_equal(a_path, b_path):
    a, b = onnx.load(a_path), onnx.load(b_path)
    for ta, tb in zip(a.graph.initializer, b.graph.initializer):
        assert ta.name == tb.name
        assert np.array_equal(onnx.numpy_helper.to_array(ta), onnx.numpy_helper.to_array(tb))


def with_unknown_fields(model):
    """Adds fields this schema does not know (numbers 900+) to the model, a node and a tensor."""
    extra = b"\xa0\x38\x2a"  # field 900, varint 42
    extra_len = b"\xaa\x38\x03abc"  # field 901, length-delimited "abc"
    node = model.graph.node[0]
    node.ParseFromString(node.SerializeToString() + extra_len)
    t = model.graph.initializer[0]
    t.ParseFromString(t.SerializeToString() + extra)
    data = model.SerializeToString() + extra
    return data


def test_unknown_fields_survive(tmp_path):
    model = onnx.load(os.path.join(FIXTURES, "gap_gemm.onnx"))
    data = with_unknown_fields(model)
    src = tmp_path / "unknown.onnx"
    src.write_bytes(data)
    out = tmp_path / "unknown_out.onnx"
    run("convert", src, "-o", out)
    assert out.read_bytes() == data


@pytest.fixture(scope="module")
def resnet50_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("resnet") / "resnet50.onnx"
    onnx.save(models.resnet50(batch=1), str(path))
    return str(path)


def test_resnet50_shaped_round_trip(resnet50_path, tmp_path):
    size = os.path.getsize(resnet50_path)
    assert size > 95_000_000
    out = tmp_path / "resnet50_out.onnx"
    run("convert", resnet50_path, "-o", out)
    assert open(resnet50_path, "rb").read() == open(out, "rb").read()
    assert_lossless(resnet50_path, str(out))


def test_resnet50_shaped_external_and_back(resnet50_path, tmp_path):
    ext = tmp_path / "resnet50_ext.onnx"
    run("convert", resnet50_path, "-o", ext, "--external-data")
    assert os.path.getsize(ext) < 1_000_000
    onnx.checker.check_model(str(ext), full_check=True)
    (tmp_path / "elsewhere").mkdir()
    kept = tmp_path / "elsewhere" / "resnet50_ext.onnx"
    run("convert", ext, "-o", kept)  # external stays external, as loaded, under the same location name
    assert open(ext, "rb").read() == open(kept, "rb").read()
    assert open(str(ext) + ".data", "rb").read() == open(str(kept) + ".data", "rb").read()
    back = tmp_path / "resnet50_back.onnx"
    run("convert", ext, "-o", back, "--inline-data")
    # Back inline: the same bytes as the original.
    assert open(resnet50_path, "rb").read() == open(back, "rb").read()


def test_constant_node_weights_round_trip(tmp_path):
    src = tmp_path / "paddle_resnet.onnx"
    onnx.save(models.resnet50(batch=1, constants=True, blocks=(1, 1, 1, 1), width=16), str(src))
    out = tmp_path / "paddle_resnet_out.onnx"
    run("convert", src, "-o", out)
    assert_lossless(str(src), str(out))


def test_inspect_reports_parameters():
    from conftest import run as run_cli
    path = os.path.join(FIXTURES, "residual.onnx")
    text = run_cli("inspect", path).stdout
    m = onnx.load(path)
    params = sum(int(np.prod(t.dims)) for t in m.graph.initializer)
    assert f"params    {params} in {len(m.graph.initializer)} initializers" in text
    assert "Conv 5" in text and "opsets    ai.onnx 13" in text and "input     input  FLOAT [N×3×16×16]" in text


def test_external_data_inside_a_subgraph_is_kept(tmp_path):
    """A tensor in an If branch stored as external data comes back inline with its values (never a dangling reference)."""
    from onnx import TensorProto, helper
    big = np.arange(600, dtype=np.float32)
    then_graph = helper.make_graph([helper.make_node("Identity", ["c"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [600])],
                                   initializer=[numpy_helper.from_array(big, "c")])
    else_graph = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, [600])])
    g = helper.make_graph([helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)], "g",
                          [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), helper.make_tensor_value_info("x", TensorProto.FLOAT, [600])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [600])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    src = tmp_path / "sub" / "m.onnx"
    src.parent.mkdir()
    onnx.save(m, str(src), save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=100)
    out = tmp_path / "out.onnx"
    run("convert", src, "-o", out)
    got = onnx.load(str(out))
    then = next(a.g for a in got.graph.node[0].attribute if a.name == "then_branch")
    assert np.array_equal(numpy_helper.to_array(then.initializer[0]), big)
    assert then.initializer[0].data_location != onnx.TensorProto.EXTERNAL
    onnx.checker.check_model(str(out), full_check=True)
    y = ortutil.run(str(out), {"cond": np.array(True), "x": np.zeros(600, np.float32)})[0]
    assert np.array_equal(y, big)
