"""Independent numpy formulas of SEMANTICS §4 (float32 arithmetic, round half to even) and a float-only reference
model: the same fake quantization written with Div/Round/Add/Clip/Sub/Mul and numpy-dequantized weights."""
import numpy as np
import onnx
from onnx import helper, numpy_helper


def f32(x):
    return np.float32(x)


def asymmetric(clip_min, clip_max, bits):
    mx, mn = max(f32(clip_max), f32(0)), min(f32(clip_min), f32(0))
    s = f32((mx - mn) / f32(2 ** bits - 1))
    if s < f32(1.1920929e-7):
        return f32(1), -(2 ** (bits - 1))
    o = int(np.round(f32(-(2 ** (bits - 1))) - f32(mn / s)))
    return s, o


def symmetric_scales(w, axis_channels, bits):
    """w as [channels, rest] (already moved so the channel leads)."""
    mx, mn = w.max(axis=1), w.min(axis=1)
    a, b = np.abs(mx), np.abs(mn)
    m = np.maximum(a, b)
    levels = f32(2 ** (bits - 1))
    s = np.where(b > a, m / levels, m / (levels - f32(1))).astype(np.float32)
    return np.where(m > 0, s, f32(1)).astype(np.float32)


def quantize(w, s, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(w / s), lo, hi).astype(np.int8)


def fp16_scale(s):
    s = f32(s)
    if f32(2 ** -14) <= s <= f32(65504):
        return f32(np.float16(s))
    r = f32(np.float16(np.sqrt(s)))
    return f32(r * r)


def channel_view(w, op, trans_b, group):
    """The weight as [channels, rest], and a function putting a [channels, rest] array back."""
    if op in ("Conv",) or (op == "Gemm" and trans_b):
        return w.reshape(w.shape[0], -1), lambda v: v.reshape(w.shape)
    if op in ("MatMul", "Gemm"):
        return w.T.copy(), lambda v: v.T.reshape(w.shape)
    if op == "ConvTranspose":
        cin, coutg = w.shape[0], w.shape[1]
        g = group
        x = w.reshape(g, cin // g, coutg, -1).transpose(0, 2, 1, 3).reshape(g * coutg, -1)
        return x, lambda v: v.reshape(g, coutg, cin // g, -1).transpose(0, 2, 1, 3).reshape(w.shape)
    raise ValueError(op)


def weight_fake_quant(w, op, trans_b, group, bits, channel_wise):
    view, back = channel_view(w.astype(np.float32), op, trans_b, group)
    if channel_wise:
        s = symmetric_scales(view, None, bits)
        q = quantize(view, s[:, None], bits)
        return back(q.astype(np.float32) * s[:, None]), q, s
    s = symmetric_scales(view.reshape(1, -1), None, bits)
    q = quantize(view, s[0], bits)
    return back(q.astype(np.float32) * s[0]), q, s


def reference_model(model, plan, force_fp16=False):
    """A float-only copy of `model` with each planned layer's input and weight fake-quantized by the formulas."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    nodes = list(g.node)
    by_name = {n.name: n for n in nodes}
    new_nodes = []
    extra_inits = []
    expected = {}
    for n in nodes:
        entry = plan.get(n.name)
        if entry is None or not entry["quant"]["enabled"]:
            new_nodes.append(n)
            continue
        act, wts = entry["quant"]["act"], entry["quant"]["wts"]
        bits_a = {"INT4": 4, "INT8": 8, "INT16": 16}[act["type"]]
        clip_min = 0.0 if act["fixed_min"] else act["clip_min"]
        s, o = asymmetric(clip_min, act["clip_max"], bits_a)
        s_written = fp16_scale(s) if force_fp16 else s
        p = n.name.replace("/", "_")
        lo, hi = -(2 ** (bits_a - 1)), 2 ** (bits_a - 1) - 1
        for name, value in ((f"{p}_s", s_written), (f"{p}_o", np.float32(o)), (f"{p}_lo", np.float32(lo)), (f"{p}_hi", np.float32(hi))):
            extra_inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        x = n.input[0]
        chain = [("Div", [x, f"{p}_s"]), ("Round", None), ("Add", [None, f"{p}_o"]), ("Clip", [None, f"{p}_lo", f"{p}_hi"]),
                 ("Sub", [None, f"{p}_o"]), ("Mul", [None, f"{p}_s"])]
        prev = None
        for k, (op, ins) in enumerate(chain):
            ins = [prev] if ins is None else [prev if i is None else i for i in ins]
            out = f"{p}_ref_{k}"
            new_nodes.append(helper.make_node(op, ins, [out]))
            prev = out
        wname = n.input[1]
        wt = inits.get(wname)
        w = numpy_helper.to_array(wt) if wt is not None else numpy_helper.to_array(consts[wname].attribute[0].t)
        trans_b = any(a.name == "transB" and a.i == 1 for a in n.attribute)
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        bits_w = {"INT4": 4, "INT8": 8}[wts["type"]]
        wq, q, ws = weight_fake_quant(w, n.op_type, trans_b, group, bits_w, wts["channel_wise"])
        extra_inits.append(numpy_helper.from_array(wq.astype(np.float32), f"{p}_wref"))
        n2 = onnx.NodeProto()
        n2.CopyFrom(n)
        n2.input[0] = prev
        n2.input[1] = f"{p}_wref"
        new_nodes.append(n2)
        expected[n.name] = {"scale_d": s_written, "offset_d": o, "q": q, "scale_w": ws}
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(extra_inits)
    return m, expected


def ifmr(x, bits):
    """SEMANTICS §4 IFMR on the gathered activations x (float32), in float64 accumulation; returns (clip_min, clip_max)."""
    x = np.asarray(x, np.float32).reshape(-1)
    n = x.size
    k = n - int(np.floor(0.999999 * n))
    if k == 0:
        k = 1
    s = np.sort(x)
    max0, min0 = max(f32(0), s[n - k]), min(f32(0), s[k - 1])
    m = max(abs(max0), abs(min0))
    high, low = f32(2 ** (bits - 1) - 1), f32(2 ** (bits - 1))
    div = low if abs(max0) < abs(min0) else high
    best, best_s = np.inf, None
    for i in range(61):
        r = f32((70 + i) / 100)
        c = f32(m * r)
        sc = f32(c / div)
        q = (np.round(np.clip(x, -c, c) / sc) * sc).astype(np.float32)
        loss = np.mean((q - x).astype(np.float64) ** 2)
        if loss < best:
            best, best_s = loss, sc
    return f32(-low * best_s), f32(high * best_s)
