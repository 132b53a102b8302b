#!/usr/bin/env python3
"""`make bench`: whole-process figures for amct-pipe next to the Python equivalent on the same file.

Each row runs both commands RUNS times as separate processes under /usr/bin/time -v and prints the median wall time
and the median peak RSS. The ~100 MB ResNet-50-shaped model is generated into bench-work/ (never committed).
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(ROOT, "bench-work")
BINARY = os.environ.get("AMCT_PIPE", os.path.join(ROOT, ".build", "release", "amct-pipe"))
PYTHON = sys.executable
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def measure(cmd):
    """Median wall seconds and median peak RSS (bytes) of `cmd` over RUNS runs."""
    walls, rss = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
        for line in result.stderr.splitlines():
            if "Maximum resident set size" in line:
                rss.append(int(line.split(":")[1]) * 1024)
    return statistics.median(walls), statistics.median(rss)


def model_file():
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, "resnet50.onnx")
    if not os.path.exists(path):
        sys.path.insert(0, HERE)
        import models
        import onnx
        onnx.save(models.resnet50(batch="N"), path)
    return path


def rows(model):
    out_a = os.path.join(WORK, "out_amct.onnx")
    out_p = os.path.join(WORK, "out_python.onnx")
    yield ("load+save", [BINARY, "convert", model, "-o", out_a],
           [PYTHON, "-c", f"import onnx; onnx.save(onnx.load({model!r}), {out_p!r})"])
    # Config-only INT8 (clips in the config, no calibration): the whole compression, next to load+save above.
    # There is no Python tool that applies an AMCT config, so this row has amct-pipe alone.
    yield ("int8 (cfg)", [BINARY, model, "--cfg", os.path.join(HERE, "int8.cfg"), "-o", out_a], None)
    # Filter pruning 0.3 + INT8 (clips in the config): the combined compression, whole process; no Python equivalent.
    yield ("prune+int8", [BINARY, model, "--cfg", os.path.join(HERE, "prune_int8.cfg"), "-o", out_a], None)
    # Executor forward at batch 8 (whole process: load, run, write) against an onnxruntime CPU session.
    x8 = os.path.join(WORK, "x8.npz")
    if not os.path.exists(x8):
        import numpy as np
        np.savez(x8, input=np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32))
    yield ("forward b8", [BINARY, "run", model, "--inputs", x8, "-o", os.path.join(WORK, "y8.npz")],
           [PYTHON, os.path.join(HERE, "ort_run.py"), model, x8])
    # Full INT8 with IFMR on 8 samples against onnxruntime.quantization.quantize_static (QDQ, per-channel, MinMax).
    yield ("int8 IFMR", [BINARY, model, "--cfg", os.path.join(HERE, "int8_ifmr.cfg"), "--calib", x8, "--batch-size", "8", "-o", out_a, "--quiet"],
           [PYTHON, os.path.join(HERE, "ort_quantize.py"), model, x8, out_p])
    yield from chain_rows()


# Linear time (issue 11): config-only INT8 on chains of 1×1 convs (bench/chain.py); no Python equivalent.
def chain_rows():
    sys.path.insert(0, HERE)
    import chain
    import onnx
    os.makedirs(WORK, exist_ok=True)
    for n, label in ((1000, "chain 1k"), (100000, "chain 100k")):
        path = os.path.join(WORK, f"chain{n}.onnx")
        if not os.path.exists(path):
            onnx.save(chain.conv_chain(n), path)
        yield (label, [BINARY, path, "--cfg", os.path.join(HERE, "int8.cfg"), "-o", os.path.join(WORK, "out_chain.onnx")], None)


def main():
    model = model_file()
    size = os.path.getsize(model)
    print(f"model: {model} ({size / 1e6:.1f} MB), {RUNS} runs each, median; peak RSS from /usr/bin/time -v")
    header = f"{'job':<12} {'tool':<22} {'wall s':>8} {'peak RSS MB':>12} {'RSS/model':>10}"
    print(header)
    print("-" * len(header))
    for name, ours, theirs in rows(model):
        results = []
        for tool, cmd in (("amct-pipe", ours), ("python", theirs)):
            if cmd is None:
                continue
            wall, rss = measure(cmd)
            results.append((wall, rss))
            print(f"{name:<12} {tool:<22} {wall:>8.3f} {rss / 1e6:>12.1f} {rss / size:>10.2f}")
        if len(results) == 2:
            print(f"{name:<12} {'python / amct-pipe':<22} {results[1][0] / results[0][0]:>7.2f}x {results[1][1] / results[0][1]:>11.2f}x")


if __name__ == "__main__":
    main()
