"""onnxruntime's CPU session on the same model and batch as `amct-pipe run`.  python bench/ort_run.py in.onnx x.npz"""
import sys

import numpy as np
import onnxruntime as ort

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
session.run(None, {"input": np.load(sys.argv[2])["input"]})
