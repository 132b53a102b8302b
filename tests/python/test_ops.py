"""Op conformance: every op of the executor (`GraphExecutor.supportedOps`) against onnxruntime, one case per attribute
form that matters (broadcasting, strides, groups, padding, dilations, ceil_mode, odd sizes, negative axes, the
opset-dependent forms, int64 shape arithmetic).

Each case is a one-node (or tiny) model. To keep the suite fast, the cases of one opset are merged into a single
model of independent nodes (names prefixed per case) and `amct-pipe run` runs once per opset; when that run fails,
the case it names (or, failing that, each half of the cases) is run apart, so one bad case cannot hide the others.
Floats must agree within 1e-5 of the output's scale (its max |value| under onnxruntime); ints and bools exactly.
A case the executor gets wrong is marked xfail(strict) with what is wrong; fixing the executor turns it into XPASS,
which fails the suite until the mark is removed.
"""
import os
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import models
from conftest import ROOT, run

TOLERANCE = 1e-5
I64_MAX = np.iinfo(np.int64).max


class Case:
    """Nodes reading `feeds` (graph inputs, fed as data) and `consts` (initializers), with `outputs` compared."""

    def __init__(self, cid, nodes, feeds, consts, outputs, opset, xfail):
        self.id, self.nodes, self.feeds, self.consts = cid, nodes, feeds, consts
        self.outputs, self.opset, self.xfail = outputs, opset, xfail

    def model(self, prefix=""):
        """The case as a standalone model; `prefix` renames every value and node (for merging)."""
        p = lambda n: prefix + n if n else n
        nodes = []
        for n in self.nodes:
            m = onnx.NodeProto()
            m.CopyFrom(n)
            m.input[:] = [p(i) for i in n.input]
            m.output[:] = [p(o) for o in n.output]
            m.name = p(n.name or n.output[0])
            nodes.append(m)
        inits = [numpy_helper.from_array(v, p(k)) for k, v in self.consts.items()]
        ins = [helper.make_tensor_value_info(p(k), helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
               for k, v in self.feeds.items()]
        outs = [helper.make_tensor_value_info(p(o), t, None) for o, t in zip(self.outputs, self.output_types())]
        graph = helper.make_graph(nodes, self.id, ins, outs, initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        return model

    def output_types(self):
        if not hasattr(self, "_types"):
            self._types = [TensorProto.FLOAT] * len(self.outputs)
            ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                   for k, v in self.feeds.items()]
            inits = [numpy_helper.from_array(v, k) for k, v in self.consts.items()]
            plain = helper.make_graph(self.nodes, "t", ins, [], initializer=inits)
            m = helper.make_model(plain, opset_imports=[helper.make_opsetid("", self.opset)])
            try:
                inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
            except onnx.shape_inference.InferenceError:  # a deliberately foreign op: outputs declared float
                return self._types
            types = {vi.name: vi.type.tensor_type.elem_type for vi in inferred.graph.value_info}
            self._types = [types.get(o) or TensorProto.FLOAT for o in self.outputs]
        return self._types

    def expected(self):
        session = ort.InferenceSession(self.model().SerializeToString(), providers=["CPUExecutionProvider"])
        return dict(zip(self.outputs, session.run(self.outputs, self.feeds)))


_rng = np.random.default_rng(0)


def R(*shape, lo=None):
    """Seeded standard-normal float32 data; with `lo`, magnitudes in [lo, lo + 2) with random signs."""
    x = _rng.standard_normal(shape).astype(np.float32)
    if lo is not None:
        x = (np.sign(x) + (x == 0)) * (lo + np.abs(_rng.uniform(0, 2, shape))).astype(np.float32)
    return np.asarray(x, np.float32)


def P(*shape):
    """Positive float32 data in [0.5, 2.5)."""
    return _rng.uniform(0.5, 2.5, shape).astype(np.float32)


def I(*values):
    return np.array(values, np.int64)


def case(cid, op, ins, feeds=None, consts=None, outs=1, opset=13, xfail=None, **attrs):
    """One node `op` reading `ins` (names in `feeds`/`consts`, or "" for an absent optional input)."""
    outputs = [f"y{i}" for i in range(outs)] if isinstance(outs, int) else outs
    node = helper.make_node(op, ins, outputs, name=cid, **attrs)
    return Case(cid, [node], feeds or {}, consts or {}, outputs, opset, xfail)


def chain(cid, nodes, feeds=None, consts=None, outputs=None, opset=13, xfail=None):
    """A tiny graph: `nodes` as (op, inputs, outputs, attrs) tuples; by default the last node's outputs are checked."""
    made = [helper.make_node(op, i, o, name=f"{cid}/{k}", **a) for k, (op, i, o, a) in enumerate(nodes)]
    return Case(cid, made, feeds or {}, consts or {}, outputs or list(made[-1].output), opset, xfail)


def unary_cases():
    x = R(2, 3, 5, 7)
    yield case("Relu", "Relu", ["x"], {"x": x})
    yield case("LeakyRelu-default", "LeakyRelu", ["x"], {"x": x})
    yield case("LeakyRelu-alpha0.3", "LeakyRelu", ["x"], {"x": x}, alpha=0.3)
    yield case("Sigmoid", "Sigmoid", ["x"], {"x": R(3, 11) * 4})
    yield case("Sigmoid-saturated", "Sigmoid", ["x"], {"x": np.array([-100, -20, 0, 20, 100], np.float32)})
    yield case("Tanh", "Tanh", ["x"], {"x": R(3, 11) * 3})
    yield case("HardSigmoid-default", "HardSigmoid", ["x"], {"x": R(4, 9) * 4})
    yield case("HardSigmoid-alpha-beta", "HardSigmoid", ["x"], {"x": R(4, 9) * 4}, alpha=1 / 6, beta=0.5)
    yield case("HardSwish-opset14", "HardSwish", ["x"], {"x": R(4, 9) * 4}, opset=14)
    yield case("Erf", "Erf", ["x"], {"x": R(5, 7) * 2})
    yield case("Gelu-opset20", "Gelu", ["x"], {"x": R(5, 7) * 2}, opset=20)
    yield case("Gelu-tanh-opset20", "Gelu", ["x"], {"x": R(5, 7) * 2}, opset=20, approximate="tanh")
    yield case("Sqrt", "Sqrt", ["x"], {"x": P(3, 7)})
    yield case("Exp", "Exp", ["x"], {"x": R(3, 7)})
    yield case("Neg", "Neg", ["x"], {"x": R(3, 7)})
    yield case("Neg-int64", "Neg", ["x"], {"x": I(-3, 0, 5, 1 << 40)})
    yield case("Abs", "Abs", ["x"], {"x": R(3, 7)})
    yield case("Abs-int64", "Abs", ["x"], {"x": I(-3, 0, 5, -(1 << 40))})
    yield case("Reciprocal", "Reciprocal", ["x"], {"x": R(3, 7, lo=0.5)})
    yield case("Identity", "Identity", ["x"], {"x": R(2, 3)})
    yield case("Identity-int64", "Identity", ["x"], {"x": I(7, -2, 1 << 50)})
    yield case("Dropout-inference", "Dropout", ["x"], {"x": R(2, 3, 5)})
    yield case("Dropout-ratio-input", "Dropout", ["x", "r"], {"x": R(2, 3, 5)}, {"r": np.array(0.3, np.float32)})
    yield case("Clip-min-max-inputs", "Clip", ["x", "lo", "hi"], {"x": R(3, 8) * 4},
               {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
    yield case("Clip-min-only", "Clip", ["x", "lo"], {"x": R(3, 8)}, {"lo": np.array(-0.5, np.float32)})
    yield case("Clip-max-only", "Clip", ["x", "", "hi"], {"x": R(3, 8)}, {"hi": np.array(0.25, np.float32)})
    yield case("Clip-none", "Clip", ["x"], {"x": R(3, 8)})
    yield case("Clip-attributes-opset6", "Clip", ["x"], {"x": R(3, 8)}, opset=6, min=-0.5, max=0.5)
    yield case("Clip-int64", "Clip", ["x", "lo", "hi"], {"x": I(-9, -1, 0, 4, 100)}, {"lo": I(-2)[0], "hi": I(5)[0]})


def binary_cases():
    shapes = {
        "same": ((2, 3, 5, 7), (2, 3, 5, 7)),
        "NCHWx1C11": ((2, 3, 5, 7), (1, 3, 1, 1)),
        "1C11xNCHW": ((1, 3, 1, 1), (2, 3, 5, 7)),
        "NCHWxscalar": ((2, 3, 5, 7), ()),
        "scalarxNCHW": ((), (2, 3, 5, 7)),
        "rank-mismatch-last": ((2, 3, 5, 7), (7,)),
        "rank-mismatch-C11": ((2, 3, 5, 7), (3, 1, 1)),
        "both-broadcast": ((2, 1, 5), (1, 4, 1)),
        "rank-mismatch-both": ((3, 1, 5), (4, 1)),
        "NC11xNCHW": ((2, 3, 1, 1), (2, 3, 5, 7)),
        "NCHWxN1HW": ((2, 3, 5, 7), (2, 1, 5, 7)),
        "NCHWx111W": ((2, 3, 5, 7), (1, 1, 1, 7)),
        "NC1WxNCH1": ((2, 3, 1, 7), (2, 3, 5, 1)),
    }
    for op in ("Add", "Sub", "Mul", "Div"):
        for label, (a, b) in shapes.items():
            y = R(*b, lo=0.5) if op == "Div" else R(*b)
            yield case(f"{op}-{label}", op, ["a", "b"], {"a": R(*a), "b": y})
        yield case(f"{op}-const-1C11", op, ["a", "b"], {"a": R(2, 4, 3, 3)}, {"b": R(1, 4, 1, 1, lo=0.5)})
        ia, ib = I(-7, 7, 100, -100, 1 << 40, 3), I(2, -2, 7, 7, 3, -1)
        yield case(f"{op}-int64", op, ["a", "b"], {"a": ia.reshape(2, 3), "b": ib.reshape(2, 3)})
        yield case(f"{op}-int64-broadcast", op, ["a", "b"], {"a": ia.reshape(2, 3)}, {"b": I(3)})
    yield case("Pow-positive-base", "Pow", ["a", "b"], {"a": P(3, 5), "b": R(3, 5)})
    yield case("Pow-square-NCHWxscalar", "Pow", ["a", "b"], {"a": R(2, 3, 4, 5)}, {"b": np.array(2, np.float32)})
    yield case("Pow-int64-exponent", "Pow", ["a", "b"], {"a": R(2, 3, 4)}, {"b": I(3)})
    yield case("Pow-cube-negative-base-1C11", "Pow", ["a", "b"], {"a": R(2, 3, 4, 5)},
               {"b": np.array([3, 2, 1], np.float32).reshape(1, 3, 1, 1)})
    yield case("Pow-int64", "Pow", ["a", "b"], {"a": I(2, -3, 5, 7)}, {"b": I(3, 2, 0, 1)})
    for label, (a, b) in shapes.items():
        yield case(f"Max-{label}", "Max", ["a", "b"], {"a": R(*a), "b": R(*b)})
    x = R(2, 3, 5, 7)
    yield case("PRelu-per-channel-C11", "PRelu", ["x", "s"], {"x": x}, {"s": R(3, 1, 1)})
    yield case("PRelu-shared", "PRelu", ["x", "s"], {"x": x}, {"s": R(1)})
    yield case("PRelu-same-shape", "PRelu", ["x", "s"], {"x": x, "s": R(2, 3, 5, 7)})


def compare_cases():
    a, b = np.round(R(2, 3, 4) * 2), np.round(R(1, 3, 1) * 2)
    for op in ("Equal", "Less", "Greater"):
        yield case(f"{op}-float-broadcast", op, ["a", "b"], {"a": a, "b": b})
        yield case(f"{op}-int64", op, ["a", "b"], {"a": I(1, 5, -3, 9), "b": I(1, 4, -2, 9)})
        yield case(f"{op}-int64-scalar", op, ["a", "b"], {"a": I(1, 5, -3, 9)}, {"b": I(5)[0]})
    big = dict()
    yield case("Equal-int64-past-2^24", "Equal", ["a", "b"], {"a": I(16777217, 1 << 40)},
               {"b": I(16777216, (1 << 40) + 1)}, **big)
    yield case("Less-int64-past-2^24", "Less", ["a", "b"], {"a": I(16777216, 1 << 40)},
               {"b": I(16777217, (1 << 40) + 1)}, **big)
    yield chain("Where-float-broadcast", [("Greater", ["x", "zero"], ["c"], {}), ("Where", ["c", "x", "y"], ["o"], {})],
                {"x": R(2, 3, 4), "y": R(1, 3, 1)}, {"zero": np.array(0, np.float32)})
    yield chain("Where-scalar-branch", [("Less", ["x", "zero"], ["c"], {}), ("Where", ["c", "s", "x"], ["o"], {})],
                {"x": R(3, 5)}, {"zero": np.array(0, np.float32), "s": np.array(-1, np.float32)})
    yield chain("Where-cond-broadcast", [("Greater", ["c0", "zero"], ["c"], {}), ("Where", ["c", "x", "y"], ["o"], {})],
                {"c0": R(1, 3, 1), "x": R(2, 3, 4), "y": R(2, 1, 4)}, {"zero": np.array(0, np.float32)})
    yield chain("Cast-bool-to-float-and-int64", [("Greater", ["x", "zero"], ["c"], {}),
                                                 ("Cast", ["c"], ["f"], {"to": TensorProto.FLOAT}),
                                                 ("Cast", ["c"], ["i"], {"to": TensorProto.INT64})],
                {"x": R(3, 5)}, {"zero": np.array(0, np.float32)}, outputs=["f", "i"])
    yield chain("Transpose-bool", [("Less", ["x", "zero"], ["c"], {}), ("Transpose", ["c"], ["t"], {"perm": [1, 0]})],
                {"x": R(3, 5)}, {"zero": np.array(0, np.float32)})
    yield chain("Where-int64", [("Equal", ["a", "b"], ["c"], {}), ("Where", ["c", "a", "z"], ["o"], {})],
                {"a": I(1, 2, 3, 4), "b": I(1, 0, 3, 0)}, {"z": I(-1)})
    yield chain("Where-int64-past-2^24", [("Equal", ["a", "b"], ["c"], {}), ("Where", ["c", "a", "z"], ["o"], {})],
                {"a": I(16777217, 2), "b": I(16777217, 0)}, {"z": I(-(1 << 40) - 1)})


def conv_cases():
    x = R(2, 4, 9, 11)
    w = lambda cout, cin, *k: R(cout, cin, *k) * 0.3
    yield case("Conv-3x3-pads1-bias", "Conv", ["x", "w", "b"], {"x": x}, {"w": w(6, 4, 3, 3), "b": R(6)}, pads=[1] * 4)
    yield case("Conv-3x3-stride2-odd", "Conv", ["x", "w"], {"x": x}, {"w": w(5, 4, 3, 3)}, strides=[2, 2])
    yield case("Conv-1x1-stride2", "Conv", ["x", "w", "b"], {"x": x}, {"w": w(8, 4, 1, 1), "b": R(8)}, strides=[2, 2])
    yield case("Conv-grouped-g2", "Conv", ["x", "w", "b"], {"x": x}, {"w": w(6, 2, 3, 3), "b": R(6)}, group=2,
               pads=[1] * 4)
    yield case("Conv-depthwise-3x3", "Conv", ["x", "w", "b"], {"x": x}, {"w": w(4, 1, 3, 3), "b": R(4)}, group=4,
               pads=[1] * 4)
    yield case("Conv-depthwise-5x5-stride2", "Conv", ["x", "w"], {"x": x}, {"w": w(4, 1, 5, 5)}, group=4,
               pads=[2] * 4, strides=[2, 2])
    yield case("Conv-depthwise-multiplier2", "Conv", ["x", "w"], {"x": x}, {"w": w(8, 1, 3, 3)}, group=4,
               pads=[1] * 4)
    yield case("Conv-depthwise-stride-2x1", "Conv", ["x", "w"], {"x": x}, {"w": w(4, 1, 3, 3)}, group=4,
               pads=[1] * 4, strides=[2, 1])
    yield case("Conv-dilation2", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 3, 3)}, dilations=[2, 2], pads=[2] * 4)
    yield case("Conv-dilation-2x1-depthwise", "Conv", ["x", "w"], {"x": x}, {"w": w(4, 1, 3, 3)}, group=4,
               dilations=[2, 1], pads=[2, 1, 2, 1])
    yield case("Conv-asymmetric-pads", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 3, 3)}, pads=[0, 1, 2, 1])
    yield case("Conv-rect-kernel-3x5-stride-2x1", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 3, 5)},
               strides=[2, 1], pads=[1, 2, 1, 2])
    for mode in ("SAME_UPPER", "SAME_LOWER"):
        yield case(f"Conv-auto_pad-{mode}-stride2", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 4, 4)},
                   strides=[2, 2], auto_pad=mode)
        yield case(f"Conv-auto_pad-{mode}-stride1-k2", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 2, 2)},
                   auto_pad=mode)
    yield case("Conv-auto_pad-VALID", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 3, 3)}, auto_pad="VALID",
               strides=[2, 2])
    yield case("Conv-depthwise-C3-stride2-nopad-batch1", "Conv", ["x", "w"], {"x": R(1, 3, 10, 7)},
               {"w": w(3, 1, 3, 3)}, group=3, strides=[2, 2])
    yield case("Conv-group2-stride2-dilation2-pads", "Conv", ["x", "w", "b"], {"x": x}, {"w": w(4, 2, 3, 3), "b": R(4)},
               group=2, strides=[2, 2], dilations=[2, 2], pads=[2, 1, 1, 2])
    yield case("Conv-no-kernel_shape-attr", "Conv", ["x", "w"], {"x": x}, {"w": w(3, 4, 3, 3)})
    yield case("Conv-weight-as-input", "Conv", ["x", "w"], {"x": x, "w": w(3, 4, 3, 3)}, pads=[1] * 4)
    x1 = R(2, 3, 13)
    yield case("Conv-1d-stride2-pads-dilation", "Conv", ["x", "w", "b"], {"x": x1}, {"w": w(5, 3, 3), "b": R(5)},
               strides=[2], pads=[1, 2], dilations=[2])
    yield case("Conv-1d-depthwise", "Conv", ["x", "w"], {"x": x1}, {"w": w(3, 1, 5)}, group=3, pads=[2, 2])
    # Depthwise rows narrower than 8 outputs, of 8 to 31 (one pass of 8 that overlaps the last), and wider than 32
    # with a tail; asymmetric pads, a height stride and dilation, and a width dilation (the per-tap path).
    for width in (5, 13, 45):
        yield case(f"Conv-depthwise-5x5-width{width}", "Conv", ["x", "w", "b"], {"x": R(2, 3, 7, width)},
                   {"w": w(3, 1, 5, 5), "b": R(3)}, group=3, pads=[2, 1, 0, 2])
    yield case("Conv-depthwise-3x3-stride2x1-dilation2x1-width40", "Conv", ["x", "w"], {"x": R(1, 2, 11, 40)},
               {"w": w(2, 1, 3, 3)}, group=2, strides=[2, 1], dilations=[2, 1], pads=[2, 1, 1, 1])
    yield case("Conv-depthwise-3x3-dilation1x2", "Conv", ["x", "w"], {"x": R(1, 2, 6, 20)}, {"w": w(2, 1, 3, 3)},
               group=2, dilations=[1, 2], pads=[1, 2, 1, 2])
    # Pads far taller than the image under a large height stride (a zero-padded copy would be mostly zeros that no
    # output reads: one pass per tap instead), and pads wider than the image at stride 1.
    yield case("Conv-depthwise-pads-taller-than-image-stride50", "Conv", ["x", "w"], {"x": R(1, 2, 3, 4)},
               {"w": w(2, 1, 3, 3)}, group=2, pads=[100, 60, 100, 60], strides=[50, 1])
    yield case("Conv-depthwise-pads-wider-than-image", "Conv", ["x", "w"], {"x": R(1, 2, 3, 4)}, {"w": w(2, 1, 3, 3)},
               group=2, pads=[4, 30, 4, 30])
    yield case("Conv-1d-auto_pad-SAME_UPPER", "Conv", ["x", "w"], {"x": x1}, {"w": w(4, 3, 4)}, strides=[2],
               auto_pad="SAME_UPPER")


def conv_transpose_cases():
    x = R(2, 4, 5, 7)
    w = lambda cin, cout, *k: R(cin, cout, *k) * 0.3
    yield case("ConvTranspose-2x2-stride2-bias", "ConvTranspose", ["x", "w", "b"], {"x": x},
               {"w": w(4, 3, 2, 2), "b": R(3)}, strides=[2, 2])
    yield case("ConvTranspose-3x3-stride2-pads1-outpad1", "ConvTranspose", ["x", "w"], {"x": x}, {"w": w(4, 3, 3, 3)},
               strides=[2, 2], pads=[1] * 4, output_padding=[1, 1])
    yield case("ConvTranspose-3x3-stride1-pads1", "ConvTranspose", ["x", "w", "b"], {"x": x},
               {"w": w(4, 5, 3, 3), "b": R(5)}, pads=[1] * 4)
    yield case("ConvTranspose-groups2", "ConvTranspose", ["x", "w", "b"], {"x": x}, {"w": w(4, 3, 3, 3), "b": R(6)},
               group=2, strides=[2, 2], pads=[1] * 4)
    yield case("ConvTranspose-depthwise", "ConvTranspose", ["x", "w"], {"x": x}, {"w": w(4, 1, 4, 4)}, group=4,
               strides=[2, 2], pads=[1] * 4)
    yield case("ConvTranspose-stride-2x3-asym-pads", "ConvTranspose", ["x", "w"], {"x": x}, {"w": w(4, 2, 3, 4)},
               strides=[2, 3], pads=[0, 1, 1, 2], output_padding=[1, 0])
    yield case("ConvTranspose-dilation2", "ConvTranspose", ["x", "w"], {"x": x}, {"w": w(4, 3, 3, 3)},
               dilations=[2, 2])
    yield case("ConvTranspose-auto_pad-SAME_UPPER", "ConvTranspose", ["x", "w"], {"x": x}, {"w": w(4, 3, 3, 3)},
               strides=[2, 2], auto_pad="SAME_UPPER")
    yield case("ConvTranspose-output_shape", "ConvTranspose", ["x", "w"], {"x": x}, {"w": w(4, 3, 3, 3)},
               strides=[2, 2], output_shape=[10, 14])
    yield case("ConvTranspose-1d", "ConvTranspose", ["x", "w", "b"], {"x": R(2, 4, 9)}, {"w": w(4, 3, 4), "b": R(3)},
               strides=[2], pads=[1, 1])


def gemm_matmul_cases():
    a, bt = R(5, 7), R(6, 7)
    yield case("Gemm-transB-bias-N", "Gemm", ["a", "b", "c"], {"a": a}, {"b": bt, "c": R(6)}, transB=1)
    yield case("Gemm-transA", "Gemm", ["a", "b", "c"], {"a": R(7, 5)}, {"b": R(7, 6), "c": R(6)}, transA=1)
    yield case("Gemm-transA-transB", "Gemm", ["a", "b"], {"a": R(7, 5)}, {"b": bt}, transA=1, transB=1)
    yield case("Gemm-alpha-beta-bias-MN", "Gemm", ["a", "b", "c"], {"a": a}, {"b": bt, "c": R(5, 6)}, transB=1,
               alpha=0.5, beta=2.0)
    yield case("Gemm-bias-scalar", "Gemm", ["a", "b", "c"], {"a": a}, {"b": bt, "c": np.array(0.7, np.float32)},
               transB=1)
    yield case("Gemm-bias-1", "Gemm", ["a", "b", "c"], {"a": a}, {"b": bt, "c": R(1)}, transB=1, beta=0.5)
    yield case("Gemm-bias-1N", "Gemm", ["a", "b", "c"], {"a": a}, {"b": bt, "c": R(1, 6)}, transB=1)
    yield case("Gemm-bias-M1", "Gemm", ["a", "b", "c"], {"a": a}, {"b": bt, "c": R(5, 1)}, transB=1)
    yield case("Gemm-no-bias", "Gemm", ["a", "b"], {"a": a}, {"b": R(7, 6)}, alpha=1.5)
    yield case("Gemm-both-inputs-data", "Gemm", ["a", "b", "c"], {"a": a, "b": R(7, 6), "c": R(6)})
    mm = {
        "2Dx2D": ((5, 7), (7, 6)),
        "batched-3Dx2D-weight": ((4, 5, 7), (7, 6)),
        "batched-4Dx2D-weight": ((2, 3, 5, 7), (7, 6)),
        "batched-3Dx3D": ((3, 5, 7), (3, 7, 6)),
        "broadcast-batch-2x1x3": ((2, 1, 5, 7), (3, 7, 6)),
        "broadcast-batch-1x3": ((1, 3, 5, 7), (2, 1, 7, 6)),
        "2Dx3D": ((5, 7), (3, 7, 6)),
        "1Dx2D": ((7,), (7, 6)),
        "2Dx1D": ((5, 7), (7,)),
        "1Dx1D": ((7,), (7,)),
        "3Dx1D": ((2, 5, 7), (7,)),
        "1Dx3D": ((7,), (2, 7, 6)),
        "attention-4D": ((2, 4, 9, 8), (2, 4, 8, 9)),
    }
    for label, (sa, sb) in mm.items():
        yield case(f"MatMul-{label}", "MatMul", ["a", "b"], {"a": R(*sa), "b": R(*sb)})
    yield case("MatMul-const-weight", "MatMul", ["a", "b"], {"a": R(3, 5, 7)}, {"b": R(7, 6)})


def norm_cases():
    def bn(c):
        return {"s": P(c), "b": R(c), "m": R(c), "v": P(c)}
    yield case("BatchNormalization-4D", "BatchNormalization", ["x", "s", "b", "m", "v"], {"x": R(2, 3, 5, 7)}, bn(3))
    yield case("BatchNormalization-3D", "BatchNormalization", ["x", "s", "b", "m", "v"], {"x": R(2, 4, 9)}, bn(4))
    yield case("BatchNormalization-2D", "BatchNormalization", ["x", "s", "b", "m", "v"], {"x": R(5, 4)}, bn(4))
    yield case("BatchNormalization-epsilon", "BatchNormalization", ["x", "s", "b", "m", "v"], {"x": R(2, 3, 4, 4)},
               dict(bn(3), v=np.array([1e-3, 0.5, 2], np.float32)), epsilon=0.01)
    yield case("BatchNormalization-opset9", "BatchNormalization", ["x", "s", "b", "m", "v"], {"x": R(2, 3, 5)}, bn(3),
               opset=9)
    for opset, ax in ((11, 1), (11, 2), (13, -1), (13, 1)):
        yield case(f"Softmax-opset{opset}-axis{ax}", "Softmax", ["x"], {"x": R(2, 3, 5) * 3}, opset=opset, axis=ax)
    yield case("Softmax-opset11-default-axis", "Softmax", ["x"], {"x": R(2, 3, 5) * 3}, opset=11)
    yield case("Softmax-opset11-4D-axis1-coerced", "Softmax", ["x"], {"x": R(2, 3, 2, 4) * 3}, opset=11, axis=1)
    yield case("Softmax-axis-of-size1", "Softmax", ["x"], {"x": R(3, 1, 4)}, axis=1)
    yield case("Softmax-opset13-default-axis", "Softmax", ["x"], {"x": R(2, 3, 5) * 3})
    yield case("Softmax-opset13-axis-2-of-4", "Softmax", ["x"], {"x": R(2, 3, 4, 5) * 3}, axis=-2)
    yield case("Softmax-large-logits", "Softmax", ["x"], {"x": R(3, 7) * 100})
    ln = {"g": P(6), "b": R(6)}
    yield case("LRN-size5-defaults", "LRN", ["x"], {"x": R(2, 7, 4, 5) * 3}, size=5)
    yield case("LRN-size3-alpha-bias", "LRN", ["x"], {"x": R(2, 4, 3, 3)}, size=3, alpha=0.5, beta=0.6, bias=2.0)
    yield case("LayerNormalization-last-axis", "LayerNormalization", ["x", "g", "b"], {"x": R(2, 5, 6)}, ln,
               opset=17)
    yield case("LayerNormalization-no-bias", "LayerNormalization", ["x", "g"], {"x": R(2, 5, 6)}, {"g": P(6)},
               opset=17, epsilon=1e-3)
    yield case("LayerNormalization-axis-2", "LayerNormalization", ["x", "g", "b"], {"x": R(2, 3, 4, 5)},
               {"g": P(4, 5), "b": R(4, 5)}, opset=17, axis=-2)
    yield case("LayerNormalization-axis1-of-3", "LayerNormalization", ["x", "g", "b"], {"x": R(2, 3, 4)},
               {"g": P(3, 4), "b": R(3, 4)}, opset=17, axis=1)


def pool_cases():
    x = R(2, 3, 9, 11)
    for op in ("MaxPool", "AveragePool"):
        yield case(f"{op}-3x3-stride2-pads1", op, ["x"], {"x": x}, kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
        yield case(f"{op}-2x2-stride2-odd", op, ["x"], {"x": x}, kernel_shape=[2, 2], strides=[2, 2])
        yield case(f"{op}-ceil_mode", op, ["x"], {"x": x}, kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
        yield case(f"{op}-ceil_mode-pads", op, ["x"], {"x": R(1, 2, 8, 8)}, kernel_shape=[3, 3], strides=[2, 2],
                   pads=[1] * 4, ceil_mode=1)
        yield case(f"{op}-rect-2x3-stride-1x2", op, ["x"], {"x": x}, kernel_shape=[2, 3], strides=[1, 2])
        yield case(f"{op}-asym-pads", op, ["x"], {"x": x}, kernel_shape=[3, 3], pads=[0, 1, 2, 1])
        for mode in ("SAME_UPPER", "SAME_LOWER", "VALID"):
            yield case(f"{op}-auto_pad-{mode}", op, ["x"], {"x": x}, kernel_shape=[4, 4], strides=[2, 2],
                       auto_pad=mode)
        yield case(f"{op}-1d-k3-stride2-pads", op, ["x"], {"x": R(2, 3, 12)}, kernel_shape=[3], strides=[2],
                   pads=[1, 1])
        yield case(f"{op}-1d-ceil_mode", op, ["x"], {"x": R(2, 3, 10)}, kernel_shape=[3], strides=[2], ceil_mode=1)
        yield case(f"{op}-1d-auto_pad-SAME_UPPER", op, ["x"], {"x": R(2, 3, 11)}, kernel_shape=[4], strides=[3],
                   auto_pad="SAME_UPPER")
        yield case(f"{op}-global-window", op, ["x"], {"x": R(2, 3, 5, 7)}, kernel_shape=[5, 7])
    yield case("MaxPool-dilation2", "MaxPool", ["x"], {"x": x}, kernel_shape=[3, 3], dilations=[2, 2])
    yield case("AveragePool-dilation2-opset19", "AveragePool", ["x"], {"x": x}, kernel_shape=[3, 3], dilations=[2, 2],
               opset=19)
    yield case("MaxPool-1d-dilation2", "MaxPool", ["x"], {"x": R(2, 3, 12)}, kernel_shape=[3], dilations=[2])
    yield case("AveragePool-count_include_pad", "AveragePool", ["x"], {"x": x}, kernel_shape=[3, 3], strides=[2, 2],
               pads=[1] * 4, count_include_pad=1)
    yield case("AveragePool-count_include_pad-asym", "AveragePool", ["x"], {"x": x}, kernel_shape=[3, 3],
               pads=[0, 1, 2, 1], count_include_pad=1)
    yield case("AveragePool-count_include_pad-ceil", "AveragePool", ["x"], {"x": R(1, 2, 8, 8)}, kernel_shape=[3, 3],
               strides=[2, 2], pads=[1] * 4, ceil_mode=1, count_include_pad=1)
    yield case("AveragePool-1d-count_include_pad", "AveragePool", ["x"], {"x": R(2, 3, 10)}, kernel_shape=[3],
               pads=[1, 1], count_include_pad=1)
    for op in ("GlobalAveragePool", "GlobalMaxPool"):
        yield case(f"{op}-4D-odd", op, ["x"], {"x": R(2, 3, 5, 7)})
        yield case(f"{op}-3D", op, ["x"], {"x": R(2, 3, 9)})
        yield case(f"{op}-1x1", op, ["x"], {"x": R(2, 5, 1, 1)})


def shape_cases():
    x = R(2, 3, 4, 5)
    for axis in (0, 1, 2, 4, -1, -3):
        yield case(f"Flatten-axis{axis}", "Flatten", ["x"], {"x": x}, axis=axis)
    yield case("Flatten-default", "Flatten", ["x"], {"x": x})
    yield case("Reshape-zero-and-minus1", "Reshape", ["x", "s"], {"x": x}, {"s": I(0, -1, 5)})
    yield case("Reshape-to-1D", "Reshape", ["x", "s"], {"x": x}, {"s": I(-1)})
    yield case("Reshape-explicit", "Reshape", ["x", "s"], {"x": x}, {"s": I(6, 20)})
    yield case("Reshape-int64", "Reshape", ["x", "s"], {"x": I(*range(12))}, {"s": I(3, -1)})
    yield case("Reshape-allowzero-opset14", "Reshape", ["x", "s"], {"x": R(0, 3)}, {"s": I(3, 0)}, opset=14,
               allowzero=1)
    yield case("Transpose-default-reverse", "Transpose", ["x"], {"x": x})
    yield case("Transpose-NCHW-to-NHWC", "Transpose", ["x"], {"x": x}, perm=[0, 2, 3, 1])
    yield case("Transpose-heads", "Transpose", ["x"], {"x": R(2, 7, 3, 4)}, perm=[0, 2, 1, 3])
    yield case("Transpose-5D", "Transpose", ["x"], {"x": R(2, 3, 3, 2, 5)}, perm=[2, 0, 3, 1, 4])
    yield case("Transpose-int64", "Transpose", ["x"], {"x": I(*range(6)).reshape(2, 3)}, perm=[1, 0])
    yield case("Concat-axis1-three", "Concat", ["a", "b", "c"], {"a": R(2, 3, 4), "b": R(2, 1, 4), "c": R(2, 5, 4)},
               axis=1)
    yield case("Concat-axis-neg1", "Concat", ["a", "b"], {"a": R(2, 3, 4), "b": R(2, 3, 2)}, axis=-1)
    yield case("Concat-axis0-const", "Concat", ["a", "b"], {"a": R(2, 3)}, {"b": R(1, 3)}, axis=0)
    yield case("Concat-int64", "Concat", ["a", "b"], {"a": I(1, 2)}, {"b": I(-1, 1 << 40)}, axis=0)
    yield case("Concat-empty-part", "Concat", ["a", "b"], {"a": R(2, 3)}, {"b": np.zeros((2, 0), np.float32)}, axis=1)
    yield case("Split-equal-3-axis1", "Split", ["x"], {"x": R(2, 6, 5)}, outs=3, axis=1)
    yield case("Split-input-sizes-opset13", "Split", ["x", "s"], {"x": R(2, 7, 5)}, {"s": I(2, 4, 1)}, outs=3, axis=1)
    yield case("Split-attr-sizes-opset11", "Split", ["x"], {"x": R(2, 7, 5)}, outs=2, opset=11, axis=-2, split=[3, 4])
    yield case("Split-neg-axis", "Split", ["x"], {"x": R(2, 3, 8)}, outs=2, axis=-1)
    yield case("Split-num_outputs-uneven-opset18", "Split", ["x"], {"x": R(2, 7)}, outs=3, opset=18, axis=1,
               num_outputs=3)
    yield case("Slice-basic", "Slice", ["x", "s", "e"], {"x": x}, {"s": I(1, 0), "e": I(3, 2)})
    yield case("Slice-axes-steps", "Slice", ["x", "s", "e", "a", "t"], {"x": x},
               {"s": I(0, 1), "e": I(5, 4), "a": I(3, 2), "t": I(2, 2)})
    yield case("Slice-negative-axes-indices", "Slice", ["x", "s", "e", "a"], {"x": x},
               {"s": I(-3), "e": I(-1), "a": I(-1)})
    yield case("Slice-negative-step-reverse", "Slice", ["x", "s", "e", "a", "t"], {"x": x},
               {"s": I(-1), "e": I(-I64_MAX), "a": I(3), "t": I(-1)})
    yield case("Slice-negative-step2", "Slice", ["x", "s", "e", "a", "t"], {"x": x},
               {"s": I(4, 10), "e": I(0, -10), "a": I(3, 1), "t": I(-2, -1)})
    yield case("Slice-end-int64-max", "Slice", ["x", "s", "e", "a"], {"x": x}, {"s": I(2), "e": I(I64_MAX), "a": I(1)})
    yield case("Slice-empty", "Slice", ["x", "s", "e", "a"], {"x": x}, {"s": I(3), "e": I(1), "a": I(2)})
    yield case("Slice-int64", "Slice", ["x", "s", "e"], {"x": I(*range(10))}, {"s": I(2), "e": I(-2)})
    yield case("Squeeze-axes-input-opset13", "Squeeze", ["x", "a"], {"x": R(2, 1, 3, 1)}, {"a": I(1, -1)})
    yield case("Squeeze-no-axes", "Squeeze", ["x"], {"x": R(1, 3, 1, 4)})
    yield case("Squeeze-axes-attr-opset11", "Squeeze", ["x"], {"x": R(2, 1, 3, 1)}, opset=11, axes=[-1])
    yield case("Unsqueeze-axes-input-opset13", "Unsqueeze", ["x", "a"], {"x": R(2, 3)}, {"a": I(0, -1)})
    yield case("Unsqueeze-middle-opset13", "Unsqueeze", ["x", "a"], {"x": R(2, 3)}, {"a": I(1, 3)})
    yield case("Unsqueeze-axes-attr-opset11", "Unsqueeze", ["x"], {"x": R(2, 3)}, opset=11, axes=[2, 0])
    yield case("Unsqueeze-scalar-int64", "Unsqueeze", ["x", "a"], {}, {"x": I(5)[0], "a": I(0)})
    yield case("Shape", "Shape", ["x"], {"x": x})
    yield case("Shape-of-scalar", "Shape", ["x"], {"x": np.array(1.5, np.float32)})
    yield case("Shape-start-end-opset15", "Shape", ["x"], {"x": x}, opset=15, start=1, end=-1)
    yield case("Shape-negative-start-opset15", "Shape", ["x"], {"x": x}, opset=15, start=-2)
    yield case("Gather-axis0-2D-indices", "Gather", ["x", "i"], {"x": R(5, 4)}, {"i": I(0, 4, 2, 2).reshape(2, 2)})
    yield case("Gather-axis-neg1-negative-index", "Gather", ["x", "i"], {"x": R(2, 3, 5)}, {"i": I(-1, 0, 3)},
               axis=-1)
    yield case("Gather-scalar-index-axis1", "Gather", ["x", "i"], {"x": R(2, 3, 5)}, {"i": I(2)[0]}, axis=1)
    yield case("Gather-int64-data", "Gather", ["x", "i"], {"x": I(10, 20, 1 << 40)}, {"i": I(2, 0)})
    yield case("Gather-indices-as-input", "Gather", ["x", "i"], {"x": R(6, 3), "i": I(5, 1, 1)})
    yield case("Cast-float-to-int64", "Cast", ["x"], {"x": R(3, 4) * 5}, to=TensorProto.INT64)
    yield case("Cast-int64-to-float", "Cast", ["x"], {"x": I(-3, 0, 7, 1 << 20)}, to=TensorProto.FLOAT)
    yield case("Cast-float-to-bool", "Cast", ["x"], {"x": np.array([0, 1.5, -2, 0], np.float32)}, to=TensorProto.BOOL)
    yield case("Cast-int64-to-int32", "Cast", ["x"], {"x": I(-3, 0, 7)}, to=TensorProto.INT32)
    yield chain("Cast-float-to-float16-and-back", [("Cast", ["x"], ["h"], {"to": TensorProto.FLOAT16}),
                                                   ("Cast", ["h"], ["y"], {"to": TensorProto.FLOAT})], {"x": R(3, 7)})
    yield case("Cast-float-to-float", "Cast", ["x"], {"x": R(3, 4)}, to=TensorProto.FLOAT)
    yield case("Cast-int64-past-2^24-to-int64", "Cast", ["x"], {"x": I(16777217, -(1 << 40) - 1)}, to=TensorProto.INT64)
    yield case("Expand-1C-to-NCW", "Expand", ["x", "s"], {"x": R(3, 1)}, {"s": I(2, 3, 4)})
    yield case("Expand-shape-lower-rank", "Expand", ["x", "s"], {"x": R(2, 3, 1)}, {"s": I(1, 5)})
    yield case("Expand-int64", "Expand", ["x", "s"], {"x": I(1, 2, 3)}, {"s": I(2, 1)})
    yield case("Pad-constant-input-opset13", "Pad", ["x", "p"], {"x": R(2, 3, 4, 5)}, {"p": I(0, 0, 1, 2, 0, 0, 2, 1)})
    yield case("Pad-constant-value", "Pad", ["x", "p", "v"], {"x": R(2, 3, 5)},
               {"p": I(0, 1, 2, 0, 0, 1), "v": np.array(-1.5, np.float32)})
    yield case("Pad-negative-crop", "Pad", ["x", "p"], {"x": R(2, 3, 6)}, {"p": I(0, 0, -1, 0, 0, 2)})
    yield case("Pad-axes-opset18", "Pad", ["x", "p", "", "a"], {"x": R(2, 3, 4, 5)},
               {"p": I(1, 2, 3, 0), "a": I(-1, 2)}, opset=18)
    yield case("Pad-int64", "Pad", ["x", "p"], {"x": I(3, 4, 1 << 40)}, {"p": I(1, 2)})
    yield case("Pad-attr-opset2", "Pad", ["x"], {"x": R(2, 3, 4)}, opset=2, pads=[0, 1, 1, 0, 1, 2], value=0.5)
    yield case("Pad-reflect", "Pad", ["x", "p"], {"x": R(2, 3, 4, 5)}, {"p": I(0, 0, 1, 2, 0, 0, 2, 1)}, mode="reflect")
    yield case("Pad-edge", "Pad", ["x", "p"], {"x": R(2, 3, 4, 5)}, {"p": I(0, 0, 1, 2, 0, 0, 2, 1)}, mode="edge")


def reduce_resize_cases():
    x = R(2, 3, 5, 7)
    yield case("ReduceMean-axes-attr-keepdims", "ReduceMean", ["x"], {"x": x}, axes=[2, 3])
    yield case("ReduceMean-last-axis-negative", "ReduceMean", ["x"], {"x": x}, axes=[-1])
    yield case("ReduceMean-keepdims0", "ReduceMean", ["x"], {"x": x}, axes=[1], keepdims=0)
    yield case("ReduceMean-all-axes", "ReduceMean", ["x"], {"x": x})
    yield case("ReduceMean-all-keepdims0", "ReduceMean", ["x"], {"x": x}, keepdims=0)
    yield case("ReduceMean-axes-input-opset18", "ReduceMean", ["x", "a"], {"x": x}, {"a": I(0, -2)}, opset=18)
    yield case("ReduceMean-no-axes-opset18", "ReduceMean", ["x"], {"x": x}, opset=18, keepdims=0)
    yield case("ReduceMean-noop_with_empty_axes-opset18", "ReduceMean", ["x"], {"x": x}, opset=18,
               noop_with_empty_axes=1)
    yield case("Range-float", "Range", ["s", "l", "d"], {},
               {"s": np.array(0.5, np.float32), "l": np.array(4, np.float32), "d": np.array(0.75, np.float32)})
    yield case("Range-int64-negative-delta", "Range", ["s", "l", "d"], {},
               {"s": I(10)[0], "l": I(-3)[0], "d": I(-4)[0]})
    yield case("Range-int64-empty", "Range", ["s", "l", "d"], {}, {"s": I(5)[0], "l": I(1)[0], "d": I(2)[0]})
    up, down = np.array([1, 1, 2, 2], np.float32), np.array([1, 1, 0.5, 0.5], np.float32)
    xr = R(2, 3, 5, 7)
    by_size = None
    for mode, ctm, nm, scales, label, bad in [
            ("nearest", "half_pixel", "round_prefer_floor", up, "x2", None),
            ("nearest", "asymmetric", "floor", up, "x2", None),
            ("nearest", "asymmetric", "floor", np.array([1, 1, 3, 3], np.float32), "x3", None),
            ("nearest", "asymmetric", "round_prefer_floor", np.array([1, 1, 3, 3], np.float32), "x3",
             None),
            ("nearest", "half_pixel", "round_prefer_ceil", np.array([1, 1, 1.5, 1.5], np.float32), "x1.5", None),
            ("nearest", "half_pixel", "round_prefer_floor", np.array([1, 1, 1.5, 1.5], np.float32), "x1.5",
             None),
            ("nearest", "half_pixel", "floor", up, "x2",
             None),
            ("nearest", "asymmetric", "floor", down, "x0.5", None),
            ("linear", "half_pixel", "round_prefer_floor", up, "x2", None),
            ("linear", "asymmetric", "round_prefer_floor", up, "x2", None),
            ("linear", "half_pixel", "round_prefer_floor", down, "x0.5", by_size),
            ("linear", "half_pixel", "round_prefer_floor", np.array([1, 1, 1.6, 2.5], np.float32), "x1.6x2.5",
             by_size),
            ("linear", "align_corners", "round_prefer_floor", up, "x2",
             None),
            ("linear", "pytorch_half_pixel", "round_prefer_floor", up, "x2", None)]:
        yield case(f"Resize-{mode}-{ctm}-{nm}-scales{label}", "Resize", ["x", "", "s"], {"x": xr}, {"s": scales},
                   mode=mode, coordinate_transformation_mode=ctm, nearest_mode=nm, xfail=bad)
    yield case("Resize-cubic-half_pixel-x2", "Resize", ["x", "", "s"], {"x": xr}, {"s": up}, mode="cubic",
               xfail="executor: Resize mode cubic is refused (nearest and linear run)")
    yield case("Resize-nearest-sizes-5x7-to-8x10", "Resize", ["x", "", "", "z"], {"x": xr}, {"z": I(2, 3, 8, 10)},
               mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    yield case("Resize-linear-sizes-5x7-to-8x10", "Resize", ["x", "", "", "z"], {"x": xr}, {"z": I(2, 3, 8, 10)},
               mode="linear")
    yield case("Resize-nearest-scales-roi-input", "Resize", ["x", "r", "s"], {"x": xr},
               {"r": np.array([], np.float32), "s": up}, mode="nearest")
    yield case("Resize-nearest-opset11-scales", "Resize", ["x", "r", "s"], {"x": xr},
               {"r": np.array([], np.float32), "s": up}, opset=11, mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def constant_cases():
    yield case("Constant-tensor", "Constant", [], value=numpy_helper.from_array(R(2, 3)))
    yield case("Constant-int64-tensor", "Constant", [], value=numpy_helper.from_array(I(3, -1, 1 << 40)))
    yield case("Constant-value_float", "Constant", [], value_float=2.5)
    yield case("Constant-value_floats", "Constant", [], value_floats=[1.0, -2.0, 3.5])
    yield case("Constant-value_int", "Constant", [], value_int=-7)
    yield case("Constant-value_ints", "Constant", [], value_ints=[4, 0, -1])
    yield case("ConstantOfShape-default", "ConstantOfShape", ["s"], {}, {"s": I(2, 3)})
    yield case("ConstantOfShape-scalar", "ConstantOfShape", ["s"], {}, {"s": np.zeros(0, np.int64)},
               value=numpy_helper.from_array(np.array([4.0], np.float32)))
    yield case("ConstantOfShape-float", "ConstantOfShape", ["s"], {}, {"s": I(3, 1, 2)},
               value=numpy_helper.from_array(np.array([2.5], np.float32)))
    yield case("ConstantOfShape-int64", "ConstantOfShape", ["s"], {}, {"s": I(4)},
               value=numpy_helper.from_array(I(1 << 40)))


def shape_arithmetic_cases():
    """int64 shape arithmetic as exporters write it: Shape → Gather → Mul/Div → Unsqueeze → Concat → Reshape."""
    x = R(2, 3, 4, 6)
    nodes = [("Shape", ["x"], ["shp"], {}), ("Gather", ["shp", "i0"], ["n"], {"axis": 0}),
             ("Gather", ["shp", "i2"], ["h"], {"axis": 0}), ("Gather", ["shp", "i3"], ["w"], {"axis": 0}),
             ("Mul", ["h", "w"], ["hw"], {}), ("Div", ["hw", "two"], ["half"], {}),
             ("Unsqueeze", ["n", "ax0"], ["n1"], {}), ("Unsqueeze", ["half", "ax0"], ["half1"], {}),
             ("Concat", ["n1", "minus1", "half1"], ["target"], {"axis": 0}), ("Reshape", ["x", "target"], ["y"], {})]
    consts = {"i0": I(0)[0], "i2": I(2)[0], "i3": I(3)[0], "two": I(2)[0], "ax0": I(0), "minus1": I(-1)}
    yield chain("shape-arith-reshape", nodes, {"x": x}, consts, outputs=["target", "y"])
    nodes = [("Shape", ["x"], ["shp"], {}), ("Slice", ["shp", "s", "e"], ["hw"], {}),
             ("Cast", ["hw"], ["hwf"], {"to": TensorProto.FLOAT}), ("Mul", ["hwf", "k"], ["scaled"], {}),
             ("Cast", ["scaled"], ["sizes_hw"], {"to": TensorProto.INT64}),
             ("Slice", ["shp", "s0", "s"], ["nc"], {}), ("Concat", ["nc", "sizes_hw"], ["sizes"], {"axis": 0}),
             ("Resize", ["x", "", "", "sizes"], ["y"], {"mode": "nearest", "nearest_mode": "floor",
                                                         "coordinate_transformation_mode": "asymmetric"})]
    consts = {"s": I(2), "e": I(4), "s0": I(0), "k": np.array([2.0, 1.5], np.float32)}
    yield chain("shape-arith-resize-sizes", nodes, {"x": x}, consts, outputs=["sizes", "y"])
    nodes = [("Shape", ["x"], ["shp"], {}), ("ReduceMean", ["x"], ["m"], {"axes": [-1], "keepdims": 1}),
             ("ConstantOfShape", ["shp"], ["ones"], {"value": numpy_helper.from_array(np.array([1.0], np.float32))}),
             ("Add", ["ones", "m"], ["y"], {}),
             ("Range", ["zero", "n", "one"], ["idx"], {}), ("Gather", ["shp", "idx"], ["dims"], {"axis": 0})]
    consts = {"zero": I(0)[0], "n": I(3)[0], "one": I(1)[0]}
    yield chain("shape-arith-range-constantofshape", nodes, {"x": x}, consts, outputs=["y", "dims"])
    nodes = [("Mul", ["a", "b"], ["m"], {}), ("Sub", ["m", "b"], ["s"], {}), ("Div", ["s", "c"], ["d"], {}),
             ("Add", ["d", "a"], ["y"], {})]
    yield chain("int64-arith-past-2^24", nodes, {}, {"a": I(16777217, -16777219), "b": I(3, 5), "c": I(-2, 7)})


def plan_cases():
    """Value lifetimes an execution plan with buffer reuse, in-place ops and views must respect."""
    x, s = R(2, 3, 4, 5), {"s": I(2, 60)}
    yield case("same-input-twice-Add", "Add", ["x", "x"], {"x": R(3, 7)})
    yield case("same-input-twice-MatMul", "MatMul", ["x", "x"], {"x": R(2, 6, 6)})
    yield case("same-input-twice-Concat", "Concat", ["x", "x"], {"x": R(2, 3)}, axis=0)
    yield chain("fan-out-intermediate-is-output", [("Relu", ["x"], ["r"], {}), ("Add", ["r", "r"], ["a"], {}),
                                                   ("Mul", ["r", "x"], ["m"], {}), ("Neg", ["r"], ["n"], {})],
                {"x": x}, outputs=["r", "a", "m", "n"])
    yield chain("identity-alias-then-op", [("Identity", ["x"], ["i"], {}), ("Identity", ["i"], ["j"], {}),
                                           ("Sigmoid", ["j"], ["y"], {}), ("Add", ["x", "y"], ["z"], {})],
                {"x": x}, outputs=["j", "y", "z"])
    yield chain("reshape-view-then-unary", [("Reshape", ["x", "s"], ["r"], {}), ("Relu", ["r"], ["y"], {})],
                {"x": x}, s, outputs=["r", "y"])
    yield chain("initializer-reshaped-and-reused", [("Reshape", ["w", "s"], ["wr"], {}), ("Relu", ["wr"], ["a"], {}),
                                                    ("Add", ["a", "v"], ["b"], {}), ("Mul", ["w", "x"], ["c"], {})],
                {"x": x, "v": R(2, 60)}, {"w": R(2, 3, 4, 5), "s": I(2, 60)}, outputs=["b", "c"])
    yield chain("transpose-then-reshape", [("Transpose", ["x"], ["t"], {"perm": [0, 2, 3, 1]}),
                                           ("Reshape", ["t", "s"], ["y"], {})], {"x": x}, {"s": I(2, 20, 3)})
    yield chain("transpose-then-flatten", [("Transpose", ["x"], ["t"], {"perm": [3, 1, 0, 2]}),
                                           ("Flatten", ["t"], ["y"], {"axis": 2})], {"x": x})
    yield chain("transpose-then-broadcast-add", [("Transpose", ["x"], ["t"], {"perm": [0, 3, 1, 2]}),
                                                 ("Add", ["t", "b"], ["y"], {})], {"x": x}, {"b": R(1, 5, 1, 1)})
    yield chain("slice-then-reshape-then-matmul", [("Slice", ["x", "st", "en", "ax"], ["sl"], {}),
                                                   ("Reshape", ["sl", "s"], ["r"], {}),
                                                   ("MatMul", ["r", "w"], ["y"], {})],
                {"x": x}, {"st": I(1), "en": I(4), "ax": I(-1), "s": I(-1, 3), "w": R(3, 4)})
    yield chain("split-partly-used", [("Split", ["x"], ["p0", "p1", "p2"], {"axis": 1}), ("Exp", ["p1"], ["y"], {})],
                {"x": R(2, 6, 3)})
    yield chain("squeeze-unsqueeze-round-trip", [("Unsqueeze", ["x", "a"], ["u"], {}),
                                                 ("Squeeze", ["u", "a"], ["q"], {}), ("Sub", ["q", "x"], ["y"], {})],
                {"x": x}, {"a": I(2)}, outputs=["u", "y"])


def conv_epilogue_cases():
    """Conv steps that absorb what follows them (Executor/Fusion.swift): constant Mul/Add as PP-LCNet exports its
    learnable affine blocks, after BatchNormalization, before a residual Add and a clamp; and the forms that must not
    fuse (a constant that is not one value per channel, an intermediate that is read twice)."""
    x, w = R(2, 4, 9, 37), R(6, 4, 3, 3) * 0.3
    dw = R(4, 1, 5, 5) * 0.2
    conv = ("Conv", ["x", "w", "b"], ["c"], {"pads": [1] * 4})
    yield chain("Conv-Mul-Add-scalars", [conv, ("Mul", ["a", "c"], ["m"], {}), ("Add", ["m", "k"], ["y"], {})],
                {"x": x}, {"w": w, "b": R(6), "a": np.array([1.7], np.float32), "k": np.array([-0.3], np.float32)})
    yield chain("Conv-BN-Mul-Add-per-channel-Relu",
                [("Conv", ["x", "w"], ["c"], {"pads": [1] * 4}),
                 ("BatchNormalization", ["c", "g", "be", "mu", "var"], ["n"], {}),
                 ("Mul", ["n", "a"], ["m"], {}), ("Add", ["k", "m"], ["t"], {}), ("Relu", ["t"], ["y"], {})],
                {"x": x}, {"w": w, "g": R(6), "be": R(6), "mu": R(6), "var": P(6), "a": R(6, 1, 1),
                           "k": R(1, 6, 1, 1)})
    yield chain("Conv-Add-scalar-only", [conv, ("Add", ["c", "k"], ["y"], {})], {"x": x},
                {"w": w, "b": R(6), "k": np.array(0.25, np.float32)})
    yield chain("Conv-Mul-not-per-channel", [conv, ("Mul", ["c", "a"], ["m"], {}), ("Add", ["m", "k"], ["y"], {})],
                {"x": x}, {"w": w, "b": R(6), "a": R(1, 1, 1, 37), "k": np.array([0.5], np.float32)})
    yield chain("Conv-Mul-read-twice", [conv, ("Mul", ["c", "a"], ["m"], {}), ("Add", ["m", "c"], ["y"], {})],
                {"x": x}, {"w": w, "b": R(6), "a": np.array([2.0], np.float32)})
    yield chain("Conv-depthwise-Mul-Add-residual-Clip",
                [("Conv", ["x", "dw"], ["c"], {"group": 4, "pads": [2] * 4}), ("Mul", ["c", "a"], ["m"], {}),
                 ("Add", ["m", "k"], ["t"], {}), ("Add", ["t", "x"], ["u"], {}),
                 ("Clip", ["u", "lo", "hi"], ["y"], {})],
                {"x": x}, {"dw": dw, "a": R(4, 1, 1), "k": np.array([0.1], np.float32),
                           "lo": np.array(-1, np.float32), "hi": np.array(1, np.float32)})
    yield chain("Conv-depthwise-residual", [("Conv", ["x", "dw", "db"], ["c"], {"group": 4, "pads": [2] * 4}),
                                            ("Add", ["r", "c"], ["y"], {})],
                {"x": x, "r": R(2, 4, 9, 37)}, {"dw": dw, "db": R(4)})
    yield chain("Conv-1d-Mul-per-channel", [("Conv", ["x1", "w1"], ["c"], {"pads": [1, 1]}),
                                            ("Mul", ["c", "a"], ["y"], {})],
                {"x1": R(2, 3, 13)}, {"w1": R(5, 3, 3) * 0.3, "a": R(5, 1)})


def large_cases():
    """Sizes past the small-tensor paths (SIMD tails, blocking, work split across threads) of a fast executor."""
    x = R(4, 64, 33, 35)
    yield case("large-Add-NCHWx1C11", "Add", ["a", "b"], {"a": x}, {"b": R(1, 64, 1, 1)})
    yield case("large-Mul-NCHWxN1HW", "Mul", ["a", "b"], {"a": x, "b": R(4, 1, 33, 35)})
    yield case("large-Div-NCHWxscalar", "Div", ["a", "b"], {"a": x}, {"b": np.array(6, np.float32)})
    yield case("large-Clip", "Clip", ["x", "lo", "hi"], {"x": x * 4},
               {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
    yield case("large-Sigmoid", "Sigmoid", ["x"], {"x": x})
    yield case("large-Conv-depthwise-3x3-stride2", "Conv", ["x", "w", "b"], {"x": x},
               {"w": R(64, 1, 3, 3) * 0.3, "b": R(64)}, group=64, strides=[2, 2], pads=[1] * 4)
    yield case("large-Conv-depthwise-5x5", "Conv", ["x", "w"], {"x": x}, {"w": R(64, 1, 5, 5) * 0.2}, group=64,
               pads=[2] * 4)
    yield case("large-Conv-1x1", "Conv", ["x", "w", "b"], {"x": x}, {"w": R(48, 64, 1, 1) * 0.1, "b": R(48)})
    yield case("large-Conv-3x3-group4", "Conv", ["x", "w"], {"x": x}, {"w": R(32, 16, 3, 3) * 0.1}, group=4,
               pads=[1] * 4)
    yield case("large-ConvTranspose-2x2-stride2", "ConvTranspose", ["x", "w", "b"], {"x": R(2, 64, 17, 19)},
               {"w": R(64, 16, 2, 2) * 0.1, "b": R(16)}, strides=[2, 2])
    yield case("large-MatMul-batched-2D-weight", "MatMul", ["a", "b"], {"a": R(8, 50, 64)}, {"b": R(64, 129) * 0.1})
    yield case("large-MatMul-attention", "MatMul", ["a", "b"], {"a": R(4, 8, 97, 16), "b": R(4, 8, 16, 97)})
    yield case("large-Softmax-last-axis", "Softmax", ["x"], {"x": R(4, 8, 97, 97) * 3})
    yield case("large-Softmax-axis1", "Softmax", ["x"], {"x": R(4, 37, 9, 11) * 3}, axis=1)
    yield case("large-ReduceMean-last-axis", "ReduceMean", ["x"], {"x": R(32, 40, 120)}, axes=[-1])
    yield case("large-ReduceMean-spatial", "ReduceMean", ["x"], {"x": x}, axes=[2, 3], keepdims=0)
    yield case("large-Transpose-to-sequence", "Transpose", ["x"], {"x": R(32, 120, 1, 40)}, perm=[0, 3, 1, 2])
    yield case("large-Transpose-heads", "Transpose", ["x"], {"x": R(3, 32, 8, 40, 15)}, perm=[0, 1, 3, 2, 4])
    yield case("large-BatchNormalization", "BatchNormalization", ["x", "s", "b", "m", "v"], {"x": x},
               {"s": P(64), "b": R(64), "m": R(64), "v": P(64)})
    yield case("large-AveragePool-3x3-pads", "AveragePool", ["x"], {"x": x}, kernel_shape=[3, 3], pads=[1] * 4)
    yield case("large-MaxPool-3x3-stride2", "MaxPool", ["x"], {"x": x}, kernel_shape=[3, 3], strides=[2, 2],
               pads=[1] * 4)
    yield case("large-GlobalAveragePool", "GlobalAveragePool", ["x"], {"x": x})
    yield case("large-Resize-nearest-x2", "Resize", ["x", "", "s"], {"x": R(2, 64, 20, 20)},
               {"s": np.array([1, 1, 2, 2], np.float32)}, mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="floor")
    yield case("large-Concat-axis1", "Concat", ["a", "b", "c"], {"a": x, "b": R(4, 32, 33, 35), "c": R(4, 5, 33, 35)},
               axis=1)
    yield case("large-LayerNormalization", "LayerNormalization", ["x", "g", "b"], {"x": R(32, 40, 120)},
               {"g": P(120), "b": R(120)}, opset=17)


ALL = [c for gen in (unary_cases, binary_cases, compare_cases, conv_cases, conv_transpose_cases, gemm_matmul_cases,
                     norm_cases, pool_cases, shape_cases, reduce_resize_cases, constant_cases, shape_arithmetic_cases,
                     plan_cases, conv_epilogue_cases, large_cases)
       for c in gen()]
BY_ID = {c.id: c for c in ALL}
assert len(BY_ID) == len(ALL), "case ids must be unique"


class Runs:
    """amct-pipe outputs per case: the cases of one opset merged into one model, run once (failures split off)."""

    def __init__(self, tmp, cases):
        self.tmp, self.cases, self.results, self.serial = tmp, cases, {}, 0

    def get(self, c):
        """The case's outputs by name, or the failure (a string) of the smallest run that held it."""
        if c.id not in self.results:
            self.run_group([d for d in self.cases if d.opset == c.opset and d.id not in self.results])
        return self.results[c.id]

    def run_group(self, cases):
        self.serial += 1
        work = self.tmp / f"g{self.serial}"
        work.mkdir()
        prefixes = {f"c{k}_": c for k, c in enumerate(cases)}
        merged = onnx.ModelProto()
        for k, (prefix, c) in enumerate(prefixes.items()):
            m = c.model(prefix)
            if k == 0:
                merged.CopyFrom(m)
                merged.graph.name = "conformance"
            else:
                for field in ("node", "initializer", "input", "output"):
                    getattr(merged.graph, field).extend(getattr(m.graph, field))
        onnx.save(merged, str(work / "m.onnx"))
        np.savez(work / "in.npz", **{p + k: v for p, c in prefixes.items() for k, v in c.feeds.items()})
        r = run("run", work / "m.onnx", "--inputs", work / "in.npz", "-o", work / "out.npz", check=False)
        if r.returncode == 0:
            out = np.load(work / "out.npz")
            for prefix, c in prefixes.items():
                self.results[c.id] = {o: out[prefix + o] for o in c.outputs if prefix + o in out.files}
            return
        failure = f"amct-pipe run exited {r.returncode}: {r.stderr.strip()[-1500:]}"
        if len(cases) == 1:
            self.results[cases[0].id] = failure
            return
        named = re.search(r"'(c\d+_)", r.stderr)
        if named and named.group(1) in prefixes:
            bad = prefixes[named.group(1)]
            self.results[bad.id] = failure
            self.run_group([c for c in cases if c is not bad])
        else:
            self.run_group(cases[: len(cases) // 2])
            self.run_group(cases[len(cases) // 2:])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("ops"), ALL)


def compare(name, got, want):
    assert got.shape == want.shape, f"{name}: shape {got.shape}, onnxruntime {want.shape}"
    if want.dtype.kind == "f":
        assert got.dtype.kind == "f", f"{name}: {got.dtype}, onnxruntime {want.dtype}"
        scale = float(np.abs(want).max()) if want.size else 0.0
        err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if want.size else 0.0
        assert err <= TOLERANCE * max(scale, 1e-30), f"{name}: max |diff| {err:.3g} at output scale {scale:.3g}"
    else:
        assert got.dtype.kind in "iub", f"{name}: {got.dtype}, onnxruntime {want.dtype}"
        assert np.array_equal(got.astype(np.int64), want.astype(np.int64)), f"{name}: {got.ravel()[:8]} != " \
                                                                            f"{want.ravel()[:8]}"


PARAMS = [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else [])
          for c in ALL]


@pytest.mark.parametrize("c", PARAMS)
def test_op_matches_onnxruntime(c, runs):
    want = c.expected()
    got = runs.get(c)
    assert not isinstance(got, str), got
    for name in c.outputs:
        assert name in got, f"output {name} is missing from amct-pipe's npz"
        compare(name, got[name], want[name])


def test_every_supported_op_has_a_case():
    """The suite covers every op of the executor's registry, as `amct-pipe ops` lists it."""
    listed = run("ops").stdout.splitlines()[1:]
    ops = {line.split()[0] for line in listed if line.strip()}
    covered = {n.op_type for c in ALL for n in c.nodes}
    assert ops and ops - covered == set()


SMALL_FAMILIES = {
    "mobilenet_v2": lambda: models.mobilenet_v2_full(image=64, classes=20),
    "densenet121": lambda: models.densenet121(image=64, classes=20, blocks=(2, 3, 2, 2)),
    "ppocr_det": lambda: models.ppocr_det(image=64),
    "svtr_rec": lambda: models.svtr_rec(width=64, classes=50),
}


@pytest.mark.parametrize("family", sorted(SMALL_FAMILIES))
def test_bench_family_matches_onnxruntime(family, tmp_path):
    """The bench architectures (bench/models.py) at small sizes, whole, within 1e-4 of onnxruntime's output scale."""
    model = SMALL_FAMILIES[family]()
    onnx.checker.check_model(model, full_check=True)
    src = str(tmp_path / "m.onnx")
    onnx.save(model, src)
    x = R(3, *[d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]])
    np.savez(tmp_path / "in.npz", input=x)
    run("run", src, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz")
    got = np.load(tmp_path / "out.npz")
    session = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    for o, want in zip(session.get_outputs(), session.run(None, {"input": x})):
        assert got[o.name].shape == want.shape
        scale = float(np.abs(want).max())
        assert scale > 0 and float(np.abs(got[o.name] - want).max()) <= 1e-4 * scale, o.name


def test_merged_runs_isolate_a_failing_case(tmp_path):
    """A case that makes amct-pipe fail is split off; the cases merged with it still get their own outputs."""
    good = [case(f"merge-good-{k}", "Relu", ["x"], {"x": R(2, 3)}) for k in range(3)]
    bad = case("merge-bad", "Relu", ["x"], {"x": R(2, 3)})
    bad.nodes[0].domain = "test.unknown"
    runs = Runs(tmp_path, good[:2] + [bad] + good[2:])
    failure = runs.get(bad)
    assert isinstance(failure, str) and "test.unknown" in failure
    for c in good:
        compare(c.id, runs.get(c)["y0"], c.expected()["y0"])


@pytest.mark.parametrize("cid,absorbed", [("Conv-Mul-Add-scalars", True), ("Conv-BN-Mul-Add-per-channel-Relu", True),
                                          ("Conv-Add-scalar-only", True), ("Conv-depthwise-Mul-Add-residual-Clip", True),
                                          ("Conv-Mul-not-per-channel", False), ("Conv-Mul-read-twice", False)])
def test_conv_step_absorbs_constant_affine(cid, absorbed, tmp_path):
    """`run --profile` lists the op types the plan runs: a constant Mul/Add one value per channel after a Conv runs in
    the Conv's step (no Mul or Add row), and one that is not, or whose input is read twice, runs on its own."""
    c = BY_ID[cid]
    src = tmp_path / "m.onnx"
    onnx.save(c.model(), src)
    np.savez(tmp_path / "in.npz", **c.feeds)
    prof = run("run", src, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz", "--profile").stderr
    rows = {line.split()[0] for line in prof.splitlines()[1:] if line.strip() and not line.startswith(("total", "plan"))}
    assert "Conv" in rows, prof
    assert (rows == {"Conv"}) == absorbed, prof
