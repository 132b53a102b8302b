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


def _model(nodes, inits, name, inp_shape, out_name, out_shape, opset=13):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, inp_shape)],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="amct-pipe-bench")
    m.ir_version = 8
    return m


class _B:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.k = [], [], 0

    def t(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def op(self, op, inputs, **attrs):
        self.k += 1
        out = f"v{self.k}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"/{op}_{self.k}", **attrs))
        return out

    def conv(self, x, cin, cout, k=3, s=1, g=1, bias=True):
        w = self.t(f"w{self.k}", self.rng.standard_normal((cout, cin // g, k, k)) * np.sqrt(2.0 / (cin // g * k * k)))
        ins = [x, w] + ([self.t(f"b{self.k}", self.rng.standard_normal(cout) * 0.05)] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=g)

    def bn(self, x, c):
        r = self.rng
        names = [self.t(f"bn{self.k}_{i}", v) for i, v in enumerate((r.uniform(0.5, 1, c), r.standard_normal(c) * 0.05,
                                                                     r.standard_normal(c) * 0.05, r.uniform(0.5, 1.5, c)))]
        return self.op("BatchNormalization", [x] + names)


def mobilenet_v2(image=64, classes=10, seed=1, width=16):
    b = _B(seed)
    six = b.t("six", 6.0)
    zero = b.t("zero", 0.0)
    relu6 = lambda x: b.op("Clip", [x, zero, six])
    x = relu6(b.bn(b.conv("input", 3, width, s=2, bias=False), width))
    cin = width
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2)]:
        for i in range(n):
            hidden = cin * t
            y = x
            if t != 1:
                y = relu6(b.bn(b.conv(y, cin, hidden, k=1, bias=False), hidden))
            y = relu6(b.bn(b.conv(y, hidden, hidden, s=s if i == 0 else 1, g=hidden, bias=False), hidden))
            y = b.bn(b.conv(y, hidden, c, k=1, bias=False), c)
            x = b.op("Add", [x, y]) if (i > 0 or s == 1) and cin == c else y
            cin = c
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    w = b.t("fc.w", b.rng.standard_normal((classes, cin)) / np.sqrt(cin))
    b.nodes.append(helper.make_node("Gemm", [x, w, b.t("fc.b", np.zeros(classes))], ["logits"], name="/fc/Gemm", transB=1))
    return _model(b.nodes, b.inits, "mobilenet_v2_shaped", ["N", 3, image, image], "logits", ["N", classes])


def densenet(image=32, classes=10, seed=2, growth=8, blocks=(3, 3)):
    b = _B(seed)
    x = b.conv("input", 3, 2 * growth, bias=False)
    c = 2 * growth
    for bi, n in enumerate(blocks):
        for _ in range(n):
            y = b.conv(b.op("Relu", [b.bn(x, c)]), c, 4 * growth, k=1, bias=False)
            y = b.conv(b.op("Relu", [b.bn(y, 4 * growth)]), 4 * growth, growth, bias=False)
            x = b.op("Concat", [x, y], axis=1)
            c += growth
        if bi < len(blocks) - 1:
            x = b.conv(b.op("Relu", [b.bn(x, c)]), c, c // 2, k=1, bias=False)
            c //= 2
            x = b.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [b.bn(x, c)])])], axis=1)
    w = b.t("fc.w", b.rng.standard_normal((classes, c)) / np.sqrt(c))
    b.nodes.append(helper.make_node("Gemm", [x, w, b.t("fc.b", np.zeros(classes))], ["logits"], name="/fc/Gemm", transB=1))
    return _model(b.nodes, b.inits, "densenet_shaped", ["N", 3, image, image], "logits", ["N", classes])


def transformer_encoder(seq=16, d=32, heads=4, layers=2, seed=3):
    """Input [N, seq, d]; multi-head self-attention and an Erf-GELU MLP with LayerNormalization (opset 17)."""
    b = _B(seed)
    r = b.rng
    x = "input"
    dh = d // heads
    shape_heads = b.inits.append(numpy_helper.from_array(np.array([0, seq, heads, dh], np.int64), "shape_heads")) or "shape_heads"
    shape_back = b.inits.append(numpy_helper.from_array(np.array([0, seq, d], np.int64), "shape_back")) or "shape_back"
    scale = b.t("attn_scale", 1.0 / np.sqrt(dh))
    for l in range(layers):
        ln1 = b.op("LayerNormalization", [x, b.t(f"ln1g{l}", r.uniform(0.8, 1.2, d)), b.t(f"ln1b{l}", r.standard_normal(d) * 0.05)], axis=-1, epsilon=1e-5)
        heads_of = {}
        for p in ("q", "k", "v"):
            h = b.op("Add", [b.op("MatMul", [ln1, b.t(f"w_{p}{l}", r.standard_normal((d, d)) / np.sqrt(d))]), b.t(f"w_{p}b{l}", r.standard_normal(d) * 0.05)])
            heads_of[p] = b.op("Transpose", [b.op("Reshape", [h, shape_heads])], perm=[0, 2, 1, 3])
        kt = b.op("Transpose", [heads_of["k"]], perm=[0, 1, 3, 2])
        att = b.op("Softmax", [b.op("Mul", [b.op("MatMul", [heads_of["q"], kt]), scale])], axis=-1)
        ctx = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [att, heads_of["v"]])], perm=[0, 2, 1, 3]), shape_back])
        x = b.op("Add", [x, b.op("MatMul", [ctx, b.t(f"o{l}", r.standard_normal((d, d)) / np.sqrt(d))])])
        ln2 = b.op("LayerNormalization", [x, b.t(f"ln2g{l}", r.uniform(0.8, 1.2, d)), b.t(f"ln2b{l}", r.standard_normal(d) * 0.05)], axis=-1, epsilon=1e-5)
        h = b.op("Add", [b.op("MatMul", [ln2, b.t(f"f1{l}", r.standard_normal((d, 4 * d)) / np.sqrt(d))]), b.t(f"f1b{l}", np.zeros(4 * d))])
        gelu = b.op("Mul", [b.op("Mul", [h, b.op("Add", [b.op("Erf", [b.op("Div", [h, b.t(f"sqrt2_{l}", np.sqrt(2.0))])]), b.t(f"one{l}", 1.0)])]), b.t(f"half{l}", 0.5)])
        x = b.op("Add", [x, b.op("MatMul", [gelu, b.t(f"f2{l}", r.standard_normal((4 * d, d)) / np.sqrt(4 * d))])])
    b.nodes.append(helper.make_node("Identity", [x], ["encoded"], name="/out"))
    return _model(b.nodes, b.inits, "transformer_encoder", ["N", seq, d], "encoded", ["N", seq, d], opset=17)
