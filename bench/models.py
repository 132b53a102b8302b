"""Generated models for the tests and the benchmark (never committed): a ResNet-50-shaped network with random
weights (~25.6 M parameters, ~102 MB), optionally with its weights in Constant nodes as Paddle exports write them."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def resnet50(batch="N", image=224, classes=1000, seed=0, constants=False, blocks=(3, 4, 6, 3), width=64):
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name, shape, fan_in):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))), name))

    def conv(scope, module, x, cin, cout, k, stride):
        weight(f"{module}.weight", (cout, cin, k, k), cin * k * k)
        out = f"{scope}/Conv_output_0"
        nodes.append(helper.make_node("Conv", [x, f"{module}.weight"], [out], name=f"{scope}/Conv",
                                      kernel_shape=[k, k], strides=[stride] * 2, pads=[k // 2] * 4))
        return out

    def bn(scope, module, x, c):
        names = [f"{module}.{s}" for s in ("weight", "bias", "running_mean", "running_var")]
        for n, v in zip(names, (rng.uniform(0.5, 1.0, c), rng.standard_normal(c) * 0.05,
                                rng.standard_normal(c) * 0.05, rng.uniform(0.5, 1.5, c))):
            inits.append(numpy_helper.from_array(v.astype(np.float32), n))
        out = f"{scope}/BatchNormalization_output_0"
        nodes.append(helper.make_node("BatchNormalization", [x] + names, [out], name=f"{scope}/BatchNormalization"))
        return out

    def relu(scope, x):
        out = f"{scope}/Relu_output_0"
        nodes.append(helper.make_node("Relu", [x], [out], name=f"{scope}/Relu"))
        return out

    x = relu("/relu", bn("/bn1", "bn1", conv("/conv1", "conv1", "input", 3, width, 7, 2), width))
    nodes.append(helper.make_node("MaxPool", [x], ["/maxpool/MaxPool_output_0"], name="/maxpool/MaxPool",
                                  kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x = "/maxpool/MaxPool_output_0"
    cin = width
    for stage, count in enumerate(blocks):
        mid = width * 2 ** stage
        cout = mid * 4
        for b in range(count):
            m, s = f"layer{stage + 1}.{b}", f"/layer{stage + 1}/layer{stage + 1}.{b}"
            stride = 2 if (b == 0 and stage > 0) else 1
            y = relu(f"{s}/relu", bn(f"{s}/bn1", f"{m}.bn1", conv(f"{s}/conv1", f"{m}.conv1", x, cin, mid, 1, 1), mid))
            y = relu(f"{s}/relu_1", bn(f"{s}/bn2", f"{m}.bn2", conv(f"{s}/conv2", f"{m}.conv2", y, mid, mid, 3, stride), mid))
            y = bn(f"{s}/bn3", f"{m}.bn3", conv(f"{s}/conv3", f"{m}.conv3", y, mid, cout, 1, 1), cout)
            shortcut = x
            if b == 0:
                shortcut = bn(f"{s}/downsample/downsample.1", f"{m}.downsample.1",
                              conv(f"{s}/downsample/downsample.0", f"{m}.downsample.0", x, cin, cout, 1, stride), cout)
            nodes.append(helper.make_node("Add", [y, shortcut], [f"{s}/Add_output_0"], name=f"{s}/Add"))
            x = relu(f"{s}/relu_2", f"{s}/Add_output_0")
            cin = cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["/avgpool/GlobalAveragePool_output_0"], name="/avgpool/GlobalAveragePool"))
    nodes.append(helper.make_node("Flatten", ["/avgpool/GlobalAveragePool_output_0"], ["/Flatten_output_0"], name="/Flatten", axis=1))
    weight("fc.weight", (classes, cin), cin)
    inits.append(numpy_helper.from_array((rng.standard_normal(classes) * 0.01).astype(np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["/Flatten_output_0", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1))
    if constants:
        nodes = [helper.make_node("Constant", [], [t.name], name=f"constant_{t.name}", value=t) for t in inits] + nodes
        inits = []
    graph = helper.make_graph(nodes, "resnet50_shaped",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, image, image])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="amct-pipe-bench")
    model.ir_version = 8
    return model
