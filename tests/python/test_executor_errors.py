"""The executor checks every node before any data runs: a bad attribute or shape is an error that names the node,
the op and the opset, with exit 1 and no output file (never a crash)."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run


def model(node, inits, x_shape=(1, 4, 8, 8), opset=13):
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def fails(tmp_path, m, expected, x_shape=(1, 4, 8, 8)):
    import onnx
    src, inputs, out = tmp_path / "m.onnx", tmp_path / "x.npz", tmp_path / "y.npz"
    onnx.save(m, src)
    np.savez(inputs, x=np.ones(x_shape, np.float32))
    r = run("run", src, "--inputs", inputs, "-o", out, check=False)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("amct-pipe: error: node 'bad': ") and expected in r.stderr, r.stderr
    assert "Fatal error" not in r.stderr and not out.exists()


W = np.ones((6, 4, 3, 3))

CASES = {
    "pads of the wrong length": (helper.make_node("Conv", ["x", "w"], ["y"], name="bad", pads=[1, 1]), {"w": W},
                                 "Conv (opset 13): pads has 2 values; a 2-D window needs 4"),
    "rank-3 weight on a 2-D image": (helper.make_node("Conv", ["x", "w"], ["y"], name="bad"), {"w": np.ones((6, 4, 3))},
                                     "Conv (opset 13): weight of shape [6, 4, 3] (rank 3) for an input of rank 4"),
    "bias of the wrong length": (helper.make_node("Conv", ["x", "w", "b"], ["y"], name="bad"), {"w": W, "b": np.ones(5)},
                                 "Conv (opset 13): bias of shape [5] for 6 output channels"),
    "group not dividing the channels": (helper.make_node("Conv", ["x", "w"], ["y"], name="bad", group=3),
                                        {"w": np.ones((6, 1, 3, 3))}, "Conv (opset 13): group 3 does not divide"),
    "a stride of 0": (helper.make_node("Conv", ["x", "w"], ["y"], name="bad", strides=[0, 1]), {"w": W},
                      "strides [0, 1] must be at least 1"),
    "an empty output": (helper.make_node("Conv", ["x", "w"], ["y"], name="bad"), {"w": np.ones((6, 4, 9, 9))},
                        "the output would be empty"),
    "BatchNormalization with a short scale": (
        helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bad"),
        {"s": np.ones(3), "b": np.ones(4), "m": np.ones(4), "v": np.ones(4)},
        "BatchNormalization (opset 13): scale of shape [3] for 4 channels"),
    "Gemm with disagreeing shapes": (helper.make_node("Gemm", ["x", "w"], ["y"], name="bad"), {"w": np.ones((5, 3))},
                                     "Gemm needs 2-D A and B"),
    "a perm that is no permutation": (helper.make_node("Transpose", ["x"], ["y"], name="bad", perm=[0, 1, 1, 2]), {},
                                      "perm [0, 1, 1, 2] is not a permutation"),
    "an axis out of range": (helper.make_node("Softmax", ["x"], ["y"], name="bad", axis=7), {},
                             "axis 7 is out of range for rank 4"),
    "a shape that would exhaust memory": (helper.make_node("Expand", ["x", "s"], ["y"], name="bad"), {},
                                          "larger than this machine's memory allows"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_node_is_named_before_any_work(tmp_path, case):
    node, inits, expected = CASES[case]
    m = model(node, inits)
    if case == "a shape that would exhaust memory":
        m.graph.initializer.append(numpy_helper.from_array(np.array([1 << 30, 1, 4, 8, 8], np.int64), "s"))
    fails(tmp_path, m, expected)


def test_unknown_op_names_the_node_op_and_opset(tmp_path):
    fails(tmp_path, model(helper.make_node("NonMaxSuppression", ["x"], ["y"], name="bad"), {}),
          "op NonMaxSuppression (opset 13) is not one the executor runs")


def test_ops_lists_the_registry():
    lines = run("ops").stdout.splitlines()
    assert lines[0].split() == ["OP", "OPSETS", "GRADIENT"]
    rows = {tuple(l.split()[:2]): l.split()[2] for l in lines[1:]}
    assert rows[("Softmax", "1-12")] == "yes" and rows[("Softmax", "13+")] == "yes"
    assert rows[("Conv", "1+")] == "yes" and rows[("Shape", "1+")] == "no"


def test_a_broadcast_matmul_past_memory_is_refused_before_allocating(tmp_path):
    import onnx
    g = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="bad")], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1 << 16, 1, 1, 1]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 1 << 16, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx")
    np.savez(tmp_path / "x.npz", a=np.ones((1 << 16, 1, 1, 1), np.float32), b=np.ones((1, 1 << 16, 1, 1), np.float32))
    r = run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "x.npz", "-o", tmp_path / "y.npz", check=False)
    assert r.returncode == 1 and "node 'bad': MatMul (opset 13)" in r.stderr and "too large" in r.stderr, r.stderr
    assert not (tmp_path / "y.npz").exists()
