"""onnxruntime's CPU session on the same model and samples as `amct-pipe run`, with default session options.

    python bench/ort_run.py in.onnx x.npz [y.npz]

x.npz holds one array per model input (by name); y.npz, when given, receives one array per model output."""
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inputs = np.load(sys.argv[2])
outputs = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
if len(sys.argv) > 3:
    np.savez(sys.argv[3], **{o.name: v for o, v in zip(session.get_outputs(), outputs)})
