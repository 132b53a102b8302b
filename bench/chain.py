"""A chain of n 1×1 convolutions (Conv → Relu, repeated), the shape that shows whether a pass is linear in the node
count: `conv_chain(n)` returns the ONNX model; `python bench/chain.py N out.onnx` writes it."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_chain(n, channels=4, image=4, seed=0):
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "input"
    for i in range(n):
        w = f"conv{i}.weight"
        inits.append(numpy_helper.from_array(
            (rng.standard_normal((channels, channels, 1, 1)) * 0.5).astype(np.float32), w))
        inits.append(numpy_helper.from_array((rng.standard_normal(channels) * 0.1).astype(np.float32), f"conv{i}.bias"))
        nodes.append(helper.make_node("Conv", [x, w, f"conv{i}.bias"], [f"/conv{i}/Conv_output_0"], name=f"/conv{i}/Conv"))
        nodes.append(helper.make_node("Relu", [f"/conv{i}/Conv_output_0"], [f"/relu{i}/Relu_output_0"], name=f"/relu{i}/Relu"))
        x = f"/relu{i}/Relu_output_0"
    graph = helper.make_graph(
        nodes, f"conv_chain_{n}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, image, image])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, image, image])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="amct-pipe-bench")
    model.ir_version = 8
    return model


if __name__ == "__main__":
    onnx.save(conv_chain(int(sys.argv[1])), sys.argv[2])
