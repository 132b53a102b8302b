#!/usr/bin/env python3
"""onnxruntime's time per op type for one model (ORT profiling), to set next to `amct-pipe run --profile`.

    python bench/op_profile.py MODEL.onnx|ARCH [--inputs x.npz] [--batch B] [--runs R] [--level all|basic|none]

MODEL is a file, or ARCH one of bench/models.BENCH (generated into bench-work/ if missing, fed at its bench batch).
Without --inputs, every model input gets seeded standard-normal data (symbolic dims = --batch, default the bench batch
or 1). --level none runs the graph as written (one kernel per ONNX node, comparable op for op with amct-pipe);
the default (all) is the session the bench times, where onnxruntime fuses nodes (e.g. Conv+Add → FusedConv).
Prints, per op type: nodes, milliseconds per run, share of node time; then the whole run's time per run.
"""
import argparse
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(os.path.dirname(HERE), "bench-work")
LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64, onnx.TensorProto.FLOAT16: np.float16}


def model_path(spec):
    """The model file, and the bench batch when `spec` names a bench architecture."""
    if os.path.exists(spec):
        return spec, None
    sys.path.insert(0, HERE)
    import models
    if spec not in models.BENCH:
        raise SystemExit(f"{spec}: neither a file nor a bench architecture ({', '.join(models.BENCH)})")
    make, shape = models.BENCH[spec]
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"{spec}.onnx")
    if not os.path.exists(path):
        onnx.save(make(), path)
    return path, shape[0]


def feeds_for(path, batch, inputs):
    if inputs:
        data = np.load(inputs)
        return {k: data[k] for k in data.files}
    model = onnx.load(path, load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tt.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(DTYPES[tt.elem_type])
    return feeds


def profile(path, feeds, runs, level):
    """Per op type: (node count, total microseconds over `runs`); and the total microseconds of the runs."""
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(None, feeds)  # warm-up, not profiled
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feeds)
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    by_op, nodes, total = collections.Counter(), collections.defaultdict(set), 0
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] += e["dur"]
            nodes[op].add(e["name"])
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            total += e["dur"]
    return {op: (len(nodes[op]), us) for op, us in by_op.items()}, total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--inputs")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--level", choices=sorted(LEVELS), default="all")
    args = parser.parse_args()
    path, bench_batch = model_path(args.model)
    feeds = feeds_for(path, args.batch or bench_batch or 1, args.inputs)
    table, total = profile(path, feeds, args.runs, args.level)
    node_time = sum(us for _, us in table.values()) or 1
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
    print(f"{path}: {shapes}; onnxruntime {ort.__version__}, optimization {args.level}, {args.runs} runs")
    print(f"{'op type':<24} {'nodes':>6} {'ms/run':>10} {'share':>7}")
    for op, (count, us) in sorted(table.items(), key=lambda kv: -kv[1][1]):
        print(f"{op:<24} {count:>6} {us / 1e3 / args.runs:>10.2f} {100 * us / node_time:>6.1f}%")
    print(f"{'(all nodes)':<24} {sum(c for c, _ in table.values()):>6} {node_time / 1e3 / args.runs:>10.2f}")
    print(f"{'(whole run)':<24} {'':>6} {total / 1e3 / args.runs:>10.2f}")


if __name__ == "__main__":
    main()
