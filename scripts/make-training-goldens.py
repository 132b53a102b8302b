#!/usr/bin/env python3
"""Writes golden cases of the training ops of SEMANTICS §7 (ActsULQ, ARQ, WtsULQ), computed by an independent numpy
implementation in float32 exactly as the formulas are written (per-element gradient terms in float32, sums over a
tensor or channel in float64), and the distillation losses of §7 (softmax KL, sigmoid KL, MSE over the teacher's
variance) with their gradients, in float64:

    .venv/bin/python scripts/make-training-goldens.py           # write tests/training/training_goldens.json
    .venv/bin/python scripts/make-training-goldens.py --check   # exit 1 when the committed file is stale

Tests/KernelsTests/LossTests.swift checks Sources/Kernels/Loss.swift against the loss cases.
Tests/KernelsTests/TrainingGoldenTests.swift runs amct-pipe's kernels (Sources/Kernels/TrainingQuant.swift) on the same
inputs and asserts the forward bit-exact and the gradients within 1e-6 relative.
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "training", "training_goldens.json")
F = np.float32
EPS = F(1.192092896e-7)


# ---------------------------------------------------------------------------------------------------- §7 in numpy

def ulq_range(clamp_max, clamp_min, fixed_min, bits):
    n = F(2 ** bits - 1)
    cmin = F(0) if fixed_min else min(F(clamp_min), F(0))
    cmax = max(F(clamp_max), n * EPS)
    s = (cmax - cmin) / n
    o = np.rint(cmin / s)
    return n, cmin, s, o, s * o, s * (o + n)


def acts_ulq(x, g, clamp_max, clamp_min, fixed_min, bits):
    n, cmin, s, o, lo, hi = ulq_range(clamp_max, clamp_min, fixed_min, bits)
    y = s * np.rint(np.clip(x, lo, hi) / s)
    inside = (x >= lo) & (x <= hi)
    with np.errstate(over="ignore", invalid="ignore"):
        q = x / s
        l_in = (np.rint(q) - q) / n
    l_out = (np.rint(cmin / s) - cmin / s) / n
    L = np.where(inside, l_in, l_out).astype(F)
    above = (x > hi).astype(F)
    below = (x < lo).astype(F)
    d_max = np.sum((g * (L + above)).astype(np.float64))
    d_min = 0.0 if fixed_min else np.sum((g * (below - L)).astype(np.float64))
    dx = np.where(inside, g, F(0)).astype(F)
    return y.astype(F), dx, F(d_max), F(d_min)


def channel_view(a, layout):
    """[groups, outer, cpg, inner] → channel-major [channels, elements of the channel]."""
    g, outer, cpg, inner = layout["groups"], layout["outer"], layout["channels_per_group"], layout["inner"]
    return a.reshape(g, outer, cpg, inner).transpose(0, 2, 1, 3).reshape(g * cpg, outer * inner)


def from_channel_view(v, layout):
    g, outer, cpg, inner = layout["groups"], layout["outer"], layout["channels_per_group"], layout["inner"]
    return v.reshape(g, cpg, outer, inner).transpose(0, 2, 1, 3).reshape(-1)


def arq_scales(w, layout, bits):
    v = channel_view(w, layout)
    out = []
    for row in v:
        mx, mn = abs(row.max()), abs(row.min())
        m = max(mx, mn)
        if not (m > 0 and np.isfinite(m)):
            out.append(F(1))
        elif mn > mx:
            out.append(F(m) / F(2 ** (bits - 1)))
        else:
            out.append(F(m) / F(2 ** (bits - 1) - 1))
    return np.array(out, dtype=F)


def fake_quant_symmetric(w, layout, scales, bits):
    v = channel_view(w, layout)
    s = scales[:, None]
    q = np.clip(np.rint(v / s), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(F)
    return from_channel_view((s * q).astype(F), layout)


def wts_ulq_scales(clips, bits):
    m = F(2 ** (bits - 1) - 1)
    return (np.maximum(clips.astype(F), m * EPS) / m).astype(F)


def wts_ulq(w, g, layout, clips, bits):
    scales = wts_ulq_scales(clips, bits)
    y = fake_quant_symmetric(w, layout, scales, bits)
    qmin, qmax = F(-(2 ** (bits - 1))), F(2 ** (bits - 1) - 1)
    m = qmax
    v = channel_view(w, layout) / scales[:, None]
    gv = channel_view(g, layout)
    inside = (v >= qmin) & (v <= qmax)
    q = np.clip(v, qmin, qmax)
    t = np.where(inside, np.rint(q) - v, q).astype(F)
    d_clips = np.sum((gv * (t / m)).astype(np.float64), axis=1).astype(F)
    dw = from_channel_view(np.where(inside, gv, F(0)).astype(F), layout)
    return y, dw, d_clips


# ---------------------------------------------------------------------------------------------------- cases

def layout(groups=1, outer=1, cpg=1, inner=1):
    return {"groups": groups, "outer": outer, "channels_per_group": cpg, "inner": inner}


def ulq_cases(rng):
    cases = []

    def add(name, x, clamp_max, clamp_min, fixed_min, bits):
        x = np.asarray(x, dtype=F)
        g = rng.standard_normal(x.size).astype(F)
        y, dx, d_max, d_min = acts_ulq(x, g, clamp_max, clamp_min, fixed_min, bits)
        cases.append({"name": name, "bits": bits, "fixed_min": fixed_min, "clamp_max": F(clamp_max), "clamp_min": F(clamp_min),
                      "x": x, "g": g, "y": y, "dx": dx, "d_clamp_max": d_max, "d_clamp_min": d_min})

    # s = 7.96875/255 = 2^-5 exactly: lo = -3, hi = 4.96875, and (k + ½)·s are exact ties of the rounding.
    _, _, s, _, lo, hi = ulq_range(4.96875, -3, False, 8)
    ties = (np.arange(-100, 165, 7, dtype=F) + F(0.5)) * s
    edges = np.array([lo, hi, np.nextafter(lo, F(-10)), np.nextafter(hi, F(10)), -10, 10, 0], dtype=F)
    add("int8_exact_grid_ties_and_edges", np.concatenate([ties, edges, rng.uniform(-5, 6, 40).astype(F)]), 4.96875, -3, False, 8)
    add("int8_random", rng.uniform(-3, 3, 120), 2.0, -1.5, False, 8)
    add("int8_fixed_min", rng.uniform(-2, 4, 150), 3.0, -1.0, True, 8)
    add("int8_clamp_min_positive", rng.uniform(-1, 3, 60), 2.5, 0.5, False, 8)
    add("int8_clamp_max_below_n_eps", rng.uniform(-1e-5, 1e-5, 40), 1e-8, -1e-9, False, 8)
    add("int8_tiny_fixed_min", np.array([0, 1e-7, 3e-5, -1e-6, 1], dtype=F), 1e-9, -1.0, True, 8)
    add("int4_random", rng.uniform(-2, 3, 120), 1.7, -0.9, False, 4)
    add("int4_offset_half", rng.uniform(-2, 6, 60), 5.0, -1.0, False, 4)
    add("int4_fixed_min", rng.uniform(-1, 5, 60), 4.0, -2.0, True, 4)
    add("int16_random", rng.uniform(-7, 9, 120), 8.0, -6.0, False, 16)
    add("int16_fixed_min", rng.uniform(-1, 2, 100), 1.5, -1.0, True, 16)
    return cases


def weight_cases(rng):
    arq, wulq = [], []

    def add(name, w, lay, bits, clip_scale=None):
        w = np.asarray(w, dtype=F).reshape(-1)
        scales = arq_scales(w, lay, bits)
        arq.append({"name": name, "bits": bits, "layout": lay, "w": w, "y": fake_quant_symmetric(w, lay, scales, bits),
                    "scales": scales})
        init = np.max(np.abs(channel_view(w, lay)), axis=1).astype(F)
        clips = init if clip_scale is None else (init * np.asarray(clip_scale, dtype=F)).astype(F)
        g = rng.standard_normal(w.size).astype(F)
        y, dw, d_clips = wts_ulq(w, g, lay, clips, bits)
        wulq.append({"name": name, "bits": bits, "layout": lay, "w": w, "g": g, "clips": clips, "y": y, "dw": dw,
                     "d_clips": d_clips, "initial_clips": init})

    # Conv [Cout=4, Cin=3, 2, 2]: a channel with |min| > |max|, an all-zero channel, a channel on an exact grid with ties.
    conv = rng.standard_normal((4, 12)).astype(F)
    conv[1] = -np.abs(conv[1]) * F(2)
    conv[1, 0] = F(0.25)
    conv[2] = 0
    conv[3] = (np.arange(12, dtype=F) - F(6) + F(0.5)) / F(16)
    conv[3, 0] = F(127) / F(16)
    add("conv_per_channel_int8", conv, layout(cpg=4, inner=12), 8, clip_scale=[1, 0.6, 1, 0.5])
    add("conv_per_channel_int4", conv, layout(cpg=4, inner=12), 4, clip_scale=[0.7, 1.3, 1, -1])
    add("conv_per_tensor_int8", conv, layout(inner=48), 8, clip_scale=[0.5])
    # MatMul / Gemm(transB=0) [K=5, N=3]: channel = column (a strided layout).
    mm = rng.standard_normal((5, 3)).astype(F)
    mm[:, 2] = -np.abs(mm[:, 2])
    add("matmul_columns_int8", mm, layout(outer=5, cpg=3, inner=1), 8, clip_scale=[0.8, 1, 0.5])
    add("matmul_columns_int4", mm, layout(outer=5, cpg=3, inner=1), 4)
    # ConvTranspose [Cin=4, Cout/g=3, 2], g = 2: regrouped so that Cout leads.
    ct = rng.standard_normal((4, 3, 2)).astype(F)
    add("convtranspose_grouped_int8", ct, layout(groups=2, outer=2, cpg=3, inner=2), 8, clip_scale=[1, 0.5, 0.9, 1.1, 0.3, 1])
    add("conv_per_channel_int16", conv, layout(cpg=4, inner=12), 16, clip_scale=[0.9, 1, 1, 0.4])
    return arq, wulq


# ---------------------------------------------------------------------------------------------------- losses (§7)

def log_softmax(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def softmax_kl(s, t, outer, classes, inner, tau):
    s = s.astype(np.float64).reshape(outer, classes, inner) / tau
    t = t.astype(np.float64).reshape(outer, classes, inner) / tau
    ls, lt = log_softmax(s, 1), log_softmax(t, 1)
    positions = outer * inner
    loss = tau * tau * (np.exp(lt) * (lt - ls)).sum() / positions
    grad = tau * (np.exp(ls) - np.exp(lt)) / positions
    return loss, grad.reshape(-1)


def sigmoid_kl(s, t, tau):
    zs, zt = s.astype(np.float64) / tau, t.astype(np.float64) / tau
    ps, pt = 1 / (1 + np.exp(-zs)), 1 / (1 + np.exp(-zt))
    log_ps, log_pt = -np.logaddexp(0, -zs), -np.logaddexp(0, -zt)
    log_qs, log_qt = -np.logaddexp(0, zs), -np.logaddexp(0, zt)
    kl = pt * (log_pt - log_ps) + (1 - pt) * (log_qt - log_qs)
    return tau * tau * kl.mean(), tau * (ps - pt) / s.size


def normalized_mse(p, t):
    v = np.var(t.astype(np.float64))
    v = v if v > 0 else 1.0
    d = p.astype(np.float64) - t.astype(np.float64)
    return (d * d).mean() / v, 2 * d / (p.size * v)


def loss_cases(rng):
    softmax, sigmoid, mse = [], [], []
    for name, (outer, classes, inner), tau in [("classes on the last axis", (4, 7, 1), 1.0),
                                               ("sequence [N, C, T] with τ = 2", (2, 5, 3), 2.0),
                                               ("one position, wide logits", (1, 6, 1), 0.5)]:
        scale = 8 if tau == 0.5 else 3
        s = rng.normal(0, scale, outer * classes * inner).astype(F)
        t = rng.normal(0, scale, outer * classes * inner).astype(F)
        loss, grad = softmax_kl(s, t, outer, classes, inner, tau)
        softmax.append({"name": name, "outer": outer, "classes": classes, "inner": inner, "temperature": tau,
                        "student": s, "teacher": t, "loss": loss, "gradient": grad})
    for name, s, t, tau in [("small logits", rng.normal(0, 1, 12), rng.normal(0, 1, 12), 1.0),
                            ("saturated logits, τ = 3", np.array([30, -30, 25, -40, 0.5, 12.0]),
                             np.array([-30, 30, 20, -35, -0.5, 11.0]), 3.0)]:
        s, t = s.astype(F), t.astype(F)
        loss, grad = sigmoid_kl(s, t, tau)
        sigmoid.append({"name": name, "temperature": tau, "student": s, "teacher": t, "loss": loss, "gradient": grad})
    for name, p, t in [("random", rng.normal(0, 2, 20), rng.normal(1, 3, 20)),
                       ("constant teacher: variance 1", rng.normal(0, 1, 5), np.full(5, 2.5))]:
        p, t = p.astype(F), t.astype(F)
        loss, grad = normalized_mse(p, t)
        mse.append({"name": name, "prediction": p, "target": t, "loss": loss, "gradient": grad})
    return {"softmax_kl": softmax, "sigmoid_kl": sigmoid, "normalized_mse": mse}


# ---------------------------------------------------------------------------------------------------- output

def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.reshape(-1)]
    if isinstance(v, (np.floating, float)):
        f = F(v)
        assert np.isfinite(f), "goldens hold finite values only"
        return float(f)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return v


def build():
    rng = np.random.default_rng(20261123)
    ulq = ulq_cases(rng)
    arq, wulq = weight_cases(rng)
    data = {"epsilon": EPS, "acts_ulq": ulq, "arq": arq, "wts_ulq": wulq, "losses": loss_cases(rng)}
    return json.dumps(plain(data), separators=(",", ":"), sort_keys=True) + "\n"


def main():
    text = build()
    if "--check" in sys.argv:
        if not os.path.exists(GOLDEN) or open(GOLDEN, encoding="utf-8").read() != text:
            print(f"stale goldens (run scripts/make-training-goldens.py): {GOLDEN}")
            sys.exit(1)
        print("training goldens checked")
        return
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
