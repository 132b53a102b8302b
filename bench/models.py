"""Generated models for the tests and the benchmark (never committed): a ResNet-50-shaped network with random
weights (~25.6 M parameters, ~102 MB), optionally with its weights in Constant nodes as Paddle exports write them;
small MobileNetV2-, DenseNet- and transformer-shaped models for the tests; and the full-size executor bench families
(BENCH: MobileNetV2, DenseNet-121, a PP-OCR-style detector, an SVTR-style recognizer) with seeded random weights."""
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


# ---------------------------------------------------------------------------------------------------------------------
# Full-size architecture families for the executor bench (issue 9). Random seeded weights, realistic shapes, opset 13,
# batch dimension symbolic "N". Each is written the way its usual exporter writes it (noted per function).
# ---------------------------------------------------------------------------------------------------------------------


class _Net(_B):
    """_B plus the building blocks the bench families share (rectangular strides, int64 constants, decomposed ops)."""

    def __init__(self, seed):
        super().__init__(seed)
        self.consts = {}

    def c(self, value):
        """A float32 scalar initializer, one per value."""
        key = ("f", float(value))
        if key not in self.consts:
            self.consts[key] = self.t(f"const_{len(self.consts)}", np.float32(value))
        return self.consts[key]

    def i64(self, values):
        key = ("i", tuple(np.ravel(values).tolist()), np.shape(values))
        if key not in self.consts:
            name = f"const_{len(self.consts)}"
            self.inits.append(numpy_helper.from_array(np.asarray(values, np.int64), name))
            self.consts[key] = name
        return self.consts[key]

    def conv2(self, x, cin, cout, k=3, s=1, g=1, bias=True, gain=2.0):
        """Conv with k×k kernel, stride s (int or (sh, sw)), 'same' padding k//2."""
        s = (s, s) if isinstance(s, int) else tuple(s)
        fan_in = cin // g * k * k
        w = self.t(f"w{self.k}", self.rng.standard_normal((cout, cin // g, k, k)) * np.sqrt(gain / fan_in))
        ins = [x, w] + ([self.t(f"b{self.k}", self.rng.standard_normal(cout) * 0.05)] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=list(s), pads=[k // 2] * 4, group=g)

    def affine(self, x, c):
        """Per-channel scale and shift as broadcast Mul/Add with [1, C, 1, 1] tensors."""
        scale = self.t(f"scale{self.k}", self.rng.uniform(0.5, 1.0, (1, c, 1, 1)))
        shift = self.t(f"shift{self.k}", self.rng.standard_normal((1, c, 1, 1)) * 0.05)
        return self.op("Add", [self.op("Mul", [x, scale]), shift])

    def hardswish(self, x):
        """x * Clip(x + 3, 0, 6) / 6, as Paddle exports hardswish."""
        clipped = self.op("Clip", [self.op("Add", [x, self.c(3)]), self.c(0), self.c(6)])
        return self.op("Div", [self.op("Mul", [x, clipped]), self.c(6)])

    def swish(self, x):
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def se(self, x, c, reduction=4):
        """Squeeze-excitation: GlobalAveragePool → Conv → Relu → Conv → HardSigmoid → Mul."""
        s = self.op("GlobalAveragePool", [x])
        s = self.op("Relu", [self.conv2(s, c, c // reduction, k=1)])
        s = self.op("HardSigmoid", [self.conv2(s, c // reduction, c, k=1)], alpha=1.0 / 6, beta=0.5)
        return self.op("Mul", [x, s])

    def layer_norm(self, x, d, eps=1e-6):
        """LayerNorm over the last axis decomposed into ReduceMean/Sub/Pow/Sqrt/Div, then Mul/Add by gamma/beta."""
        diff = self.op("Sub", [x, self.op("ReduceMean", [x], axes=[-1], keepdims=1)])
        var = self.op("ReduceMean", [self.op("Pow", [diff, self.c(2)])], axes=[-1], keepdims=1)
        y = self.op("Div", [diff, self.op("Sqrt", [self.op("Add", [var, self.c(eps)])])])
        gamma = self.t(f"ln_g{self.k}", self.rng.uniform(0.8, 1.2, d))
        return self.op("Add", [self.op("Mul", [y, gamma]), self.t(f"ln_b{self.k}", self.rng.standard_normal(d) * 0.05)])

    def linear(self, x, din, dout):
        """MatMul by a 2-D weight and a broadcast bias Add (how a Linear on a sequence exports)."""
        w = self.t(f"lin_w{self.k}", self.rng.standard_normal((din, dout)) / np.sqrt(din))
        bias = self.t(f"lin_b{self.k}", self.rng.standard_normal(dout) * 0.02)
        return self.op("Add", [self.op("MatMul", [x, w]), bias])

    def resize(self, x, scale):
        """Nearest upsampling by an integer factor as Paddle and torch export it (asymmetric, floor)."""
        scales = self.t(f"scales{self.k}", [1, 1, scale, scale])
        return self.op("Resize", [x, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                       nearest_mode="floor")

    def finish(self, x, out_name):
        self.nodes.append(helper.make_node("Identity", [x], [out_name], name="/output/Identity"))


def mobilenet_v2_full(image=224, classes=1000, seed=11):
    """torchvision MobileNetV2 (width 1.0) as torch.onnx.export writes it in eval mode: every BatchNormalization
    folded into the Conv before it (Conv with bias), ReLU6 as Clip(x, 0, 6), GlobalAveragePool → Flatten → Gemm."""
    b = _Net(seed)
    relu6 = lambda x: b.op("Clip", [x, b.c(0), b.c(6)])
    x = relu6(b.conv2("input", 3, 32, s=2))
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x if t == 1 else relu6(b.conv2(x, cin, hidden, k=1))
            y = relu6(b.conv2(y, hidden, hidden, s=stride, g=hidden))
            y = b.conv2(y, hidden, c, k=1, gain=1.0)
            x = b.op("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = relu6(b.conv2(x, cin, 1280, k=1))
    x = b.op("Flatten", [b.op("GlobalAveragePool", [x])], axis=1)
    w = b.t("classifier.weight", b.rng.standard_normal((classes, 1280)) / np.sqrt(1280))
    b.nodes.append(helper.make_node("Gemm", [x, w, b.t("classifier.bias", b.rng.standard_normal(classes) * 0.01)],
                                    ["logits"], name="/classifier/Gemm", transB=1))
    return _model(b.nodes, b.inits, "mobilenet_v2", ["N", 3, image, image], "logits", ["N", classes])


def densenet121(image=224, classes=1000, seed=12, growth=32, blocks=(6, 12, 24, 16), bn_size=4):
    """torchvision DenseNet-121 as torch.onnx.export writes it in eval mode: each layer concatenates all earlier
    features (one Concat per layer), BN-Relu-Conv1x1-BN-Relu-Conv3x3 where the BN after the 1×1 conv is folded into
    it (Conv with bias) and the BN after a Concat stays a BatchNormalization node; transitions end in AveragePool."""
    b = _Net(seed)
    x = b.op("Relu", [b.conv2("input", 3, 2 * growth, k=7, s=2)])
    x = b.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c = 2 * growth
    for bi, n in enumerate(blocks):
        features = [x]
        for i in range(n):
            cat = features[0] if len(features) == 1 else b.op("Concat", features, axis=1)
            cin = c + i * growth
            y = b.op("Relu", [b.conv2(b.op("Relu", [b.bn(cat, cin)]), cin, bn_size * growth, k=1)])
            features.append(b.conv2(y, bn_size * growth, growth, bias=False))
        x = b.op("Concat", features, axis=1)
        c += n * growth
        if bi < len(blocks) - 1:
            x = b.conv2(b.op("Relu", [b.bn(x, c)]), c, c // 2, k=1, bias=False)
            c //= 2
            x = b.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [b.bn(x, c)])])], axis=1)
    w = b.t("classifier.weight", b.rng.standard_normal((classes, c)) / np.sqrt(c))
    b.nodes.append(helper.make_node("Gemm", [x, w, b.t("classifier.bias", np.zeros(classes))], ["logits"],
                                    name="/classifier/Gemm", transB=1))
    return _model(b.nodes, b.inits, "densenet121", ["N", 3, image, image], "logits", ["N", classes])


# PPLCNet x1.0 depthwise-separable stages: (kernel, in, out, stride, SE); outputs of stages 3..6 feed the FPN.
_PPLCNET = [
    [(3, 16, 32, 1, False)],
    [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 5,
    [(5, 256, 512, 2, True), (5, 512, 512, 1, True)],
]


def ppocr_det(image=320, seed=13, fpn=256):
    """A PP-OCR-style DB text detector as paddle2onnx writes it: PPLCNet x1.0 backbone (Conv + BatchNormalization +
    HardSwish as x*Clip(x+3,0,6)/6, depthwise 3×3/5×5, SE blocks), DBFPN neck (1×1 lateral convs, nearest Resize ×2
    and Add top-down, 3×3 convs, Resize ×8/×4/×2 and Concat), DB head (Conv-BN-Relu, 2 ConvTranspose 2×2/2, Sigmoid).
    Output: the shrink map [N, 1, image, image]."""
    b = _Net(seed)
    cbh = lambda x, cin, cout, k=3, s=1, g=1: b.hardswish(b.bn(b.conv2(x, cin, cout, k, s, g, bias=False), cout))
    x = cbh("input", 3, 16, s=2)
    taps = []
    for stage, blocks in enumerate(_PPLCNET):
        for k, cin, cout, s, use_se in blocks:
            x = cbh(x, cin, cin, k, s, g=cin)
            if use_se:
                x = b.se(x, cin)
            x = cbh(x, cin, cout, k=1)
        if stage > 0:
            taps.append((x, cout))
    lat = [b.conv2(t, c, fpn, k=1, bias=False) for t, c in taps]
    for i in (2, 1, 0):
        lat[i] = b.op("Add", [lat[i], b.resize(lat[i + 1], 2)])
    outs = [b.conv2(p, fpn, fpn // 4, bias=False) for p in lat]
    outs = [outs[0]] + [b.resize(p, 2 ** (i + 1)) for i, p in enumerate(outs[1:])]
    x = b.op("Concat", outs[::-1], axis=1)
    x = b.op("Relu", [b.bn(b.conv2(x, fpn, fpn // 4, bias=False), fpn // 4)])
    for cout in (fpn // 4, 1):
        cin = fpn // 4
        w = b.t(f"deconv_w{b.k}", b.rng.standard_normal((cin, cout, 2, 2)) * np.sqrt(1.0 / cin))
        x = b.op("ConvTranspose", [x, w, b.t(f"deconv_b{b.k}", b.rng.standard_normal(cout) * 0.05)],
                 kernel_shape=[2, 2], strides=[2, 2])
        if cout > 1:
            x = b.op("Relu", [b.bn(x, cout)])
    b.finish(b.op("Sigmoid", [x]), "maps")
    return _model(b.nodes, b.inits, "ppocr_det", ["N", 3, image, image], "maps", ["N", 1, image, image])


# MobileNetV1Enhance (scale 0.5) depthwise-separable blocks: (in, out, stride, dw kernel, SE).
_V1_ENHANCE = ([(16, 32, 1, 3, False), (32, 64, 1, 3, False), (64, 64, 1, 3, False), (64, 128, (2, 1), 3, False),
                (128, 128, 1, 3, False), (128, 256, (2, 1), 3, False)] + [(256, 256, 1, 5, False)] * 5
               + [(256, 512, (2, 1), 5, True), (512, 512, (1, 2), 5, True)])


def svtr_rec(height=48, width=320, classes=6625, seed=14, dims=120, heads=8, depth=2, mlp_ratio=2):
    """A PP-OCRv3-style SVTR text recognizer: MobileNetV1Enhance backbone whose BatchNorms are broadcast Mul/Add on
    [N,C,H,W]×[1,C,1,1] after bias-free convs (HardSwish as Mul/Clip/Div), depthwise 3×3/5×5, SE; an SVTR neck
    (convs, NCHW → sequence by Reshape/Transpose, global attention blocks with batched MatMul/Transpose/Softmax and
    LayerNorm decomposed into ReduceMean/Sub/Pow/Sqrt/Div, MLP with swish, back to NCHW, Concat shortcut); CTC head
    (Squeeze, Transpose, MatMul to classes, Softmax). Output: [N, width / 8, classes] probabilities."""
    b = _Net(seed)
    cah = lambda x, cin, cout, k=3, s=1, g=1: b.hardswish(b.affine(b.conv2(x, cin, cout, k, s, g, bias=False), cout))
    x = cah("input", 3, 16, s=2)
    for cin, cout, s, k, use_se in _V1_ENHANCE:
        x = cah(x, cin, cin, k, s, g=cin)
        if use_se:
            x = b.se(x, cin)
        x = cah(x, cin, cout, k=1)
    x = b.op("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    h_out, w_out = (height // 16 - 2) // 2 + 1, width // 8
    shortcut = x
    cbs = lambda x, cin, cout, k: b.swish(b.affine(b.conv2(x, cin, cout, k, bias=False), cout))
    x = cbs(cbs(x, 512, 512 // 8, 3), 512 // 8, dims, 1)
    z = b.op("Transpose", [b.op("Reshape", [x, b.i64([0, 0, -1])])], perm=[0, 2, 1])
    dh = dims // heads
    for _ in range(depth):
        qkv = b.op("Transpose", [b.op("Reshape", [b.linear(b.layer_norm(z, dims), dims, 3 * dims),
                                                   b.i64([0, -1, 3, heads, dh])])], perm=[2, 0, 3, 1, 4])
        q, k, v = (b.op("Gather", [qkv, b.i64(i)], axis=0) for i in range(3))
        q = b.op("Mul", [q, b.c(dh ** -0.5)])
        attn = b.op("Softmax", [b.op("MatMul", [q, b.op("Transpose", [k], perm=[0, 1, 3, 2])])], axis=-1)
        ctx = b.op("Reshape", [b.op("Transpose", [b.op("MatMul", [attn, v])], perm=[0, 2, 1, 3]), b.i64([0, -1, dims])])
        z = b.op("Add", [z, b.linear(ctx, dims, dims)])
        hidden = b.swish(b.linear(b.layer_norm(z, dims), dims, mlp_ratio * dims))
        z = b.op("Add", [z, b.linear(hidden, mlp_ratio * dims, dims)])
    z = b.layer_norm(z, dims)
    x = b.op("Reshape", [b.op("Transpose", [z], perm=[0, 2, 1]), b.i64([0, dims, h_out, w_out])])
    x = b.op("Concat", [shortcut, cbs(x, dims, 512, 1)], axis=1)
    x = cbs(cbs(x, 1024, 512 // 8, 3), 512 // 8, 64, 1)
    seq = b.op("Transpose", [b.op("Squeeze", [x, b.i64([2])])], perm=[0, 2, 1])
    b.finish(b.op("Softmax", [b.linear(seq, 64, classes)], axis=2), "probs")
    return _model(b.nodes, b.inits, "svtr_rec", ["N", 3, height, width], "probs", ["N", w_out, classes])


def resnet18(image=64, classes=10, seed=15, width=64, blocks=(2, 2, 2, 2)):
    """A ResNet-18-shaped network (basic blocks: two 3×3 convs, BN kept as nodes, residual Add) for the retraining
    bench, at a small image size."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name, shape, fan_in):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name))

    def conv_bn(scope, x, cin, cout, k, stride, relu=True):
        weight(f"{scope}.weight", (cout, cin, k, k), cin * k * k)
        nodes.append(helper.make_node("Conv", [x, f"{scope}.weight"], [f"{scope}_c"], name=f"/{scope}/Conv",
                                      kernel_shape=[k, k], strides=[stride] * 2, pads=[k // 2] * 4))
        names = [f"{scope}.bn.{n}" for n in ("weight", "bias", "mean", "var")]
        for n, v in zip(names, (rng.uniform(0.5, 1.0, cout), rng.standard_normal(cout) * 0.05,
                                rng.standard_normal(cout) * 0.05, rng.uniform(0.5, 1.5, cout))):
            inits.append(numpy_helper.from_array(v.astype(np.float32), n))
        nodes.append(helper.make_node("BatchNormalization", [f"{scope}_c"] + names, [f"{scope}_bn"], name=f"/{scope}/BN"))
        if not relu:
            return f"{scope}_bn"
        nodes.append(helper.make_node("Relu", [f"{scope}_bn"], [f"{scope}_r"], name=f"/{scope}/Relu"))
        return f"{scope}_r"

    x = conv_bn("conv1", "input", 3, width, 3, 1)
    cin = width
    for stage, count in enumerate(blocks):
        cout = width * 2 ** stage
        for b in range(count):
            s = f"layer{stage + 1}.{b}"
            stride = 2 if (b == 0 and stage > 0) else 1
            y = conv_bn(f"{s}.conv2", conv_bn(f"{s}.conv1", x, cin, cout, 3, stride), cout, cout, 3, 1, relu=False)
            short = conv_bn(f"{s}.downsample", x, cin, cout, 1, stride, relu=False) if (stride != 1 or cin != cout) else x
            nodes.append(helper.make_node("Add", [y, short], [f"{s}_add"], name=f"/{s}/Add"))
            nodes.append(helper.make_node("Relu", [f"{s}_add"], [f"{s}_out"], name=f"/{s}/Relu"))
            x, cin = f"{s}_out", cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"], name="/avgpool/GlobalAveragePool"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="/Flatten", axis=1))
    weight("fc.weight", (classes, cin), cin)
    inits.append(numpy_helper.from_array(np.zeros(classes, np.float32), "fc.bias"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1))
    return _model(nodes, inits, "resnet18", ["N", 3, image, image], "logits", ["N", classes])


# The executor bench rows: arch → (generator, input shape at the bench batch).
BENCH = {
    "resnet50": (lambda: resnet50(batch="N"), (8, 3, 224, 224)),
    "mobilenet_v2": (mobilenet_v2_full, (8, 3, 224, 224)),
    "densenet121": (densenet121, (8, 3, 224, 224)),
    "ppocr_det": (ppocr_det, (4, 3, 320, 320)),
    "svtr_rec": (svtr_rec, (32, 3, 48, 320)),
}
