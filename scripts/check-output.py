#!/usr/bin/env python3
"""Checks a compressed model the way a user would: onnx.checker (full), an onnxruntime session, the output next to
the float model's on the same input; with --digits, accuracy on the digits test set for both."""
import argparse
import os

import numpy as np
import onnx
import onnxruntime as ort


def session(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("original")
    p.add_argument("compressed")
    p.add_argument("--digits")
    a = p.parse_args()
    onnx.checker.check_model(a.compressed, full_check=True)
    print(f"   onnx.checker: ok; size {os.path.getsize(a.original)} → {os.path.getsize(a.compressed)} bytes")
    if a.digits:
        d = np.load(a.digits)
        name = onnx.load(a.original).graph.input[0].name  # "input" (the MLP) or "image" (the CNN)
        accs = [float((session(m).run(None, {name: d[name]})[0].argmax(1) == d["label"]).mean()) for m in (a.original, a.compressed)]
        print(f"   onnxruntime: digits accuracy float {accs[0]:.2%} → compressed {accs[1]:.2%} ({len(d['label'])} test images)")
        return
    m = onnx.load(a.original)
    inp = m.graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y0 = session(a.original).run(None, {inp.name: x})[0]
    y1 = session(a.compressed).run(None, {inp.name: x})[0]
    print(f"   onnxruntime: runs; max |Δ| vs float {np.abs(y0 - y1).max():.4f} (output range ±{np.abs(y0).max():.2f})")


if __name__ == "__main__":
    main()
