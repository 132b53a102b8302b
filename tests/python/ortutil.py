"""Runs a model in onnxruntime on seeded inputs shaped from its declared inputs (symbolic dims → 2)."""
import numpy as np
import onnx
import onnxruntime as ort

NP = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64, onnx.TensorProto.FLOAT16: np.float16}


def inputs_for(model_path, seed=0, symbolic=2):
    model = onnx.load(model_path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else symbolic for d in tt.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(NP[tt.elem_type])
    return feeds


def run(model_path, feeds, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)
