"""Data-parallel scaling on paper (issue 23, README "Distributed retraining"): for each bench model, the time of one
gradient all-reduce between 2 ranks on this machine (TCP over loopback, and Open MPI's shared memory) against one
training step's compute (`amct-pipe retrain`, release build), and what the ring all-reduce cost model predicts for 8
and 32 nodes on 10 GbE:

    t_allreduce(N) = 2(N−1)/N · bytes / bandwidth + 2(N−1) · latency       (bandwidth 1.25 GB/s, latency 50 µs)

Run after `swift build -c release`: .venv/bin/python bench/allreduce.py [model…]"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(ROOT, "bench-work")
RELEASE = os.path.join(ROOT, ".build", "release")
sys.path.insert(0, HERE)
import models  # noqa: E402

CFG = """batch_num: 1
retrain_data_quant_config { ulq_quantize { dst_type: INT8 } }
retrain_weight_quant_config { arq_retrain { channel_wise: true dst_type: INT8 } }
"""
# name → (model, per-sample input shape, batch per rank)
CASES = {
    "resnet18_64": (lambda: models.resnet18(image=64), (3, 64, 64), 32),
    "resnet50": (lambda: models.resnet50(batch="N"), (3, 224, 224), 8),
    "mobilenet_v2": (models.mobilenet_v2_full, (3, 224, 224), 8),
    "densenet121": (models.densenet121, (3, 224, 224), 8),
    "ppocr_det": (models.ppocr_det, (3, 320, 320), 4),
    "svtr_rec": (models.svtr_rec, (3, 48, 320), 32),
}
BANDWIDTH, LATENCY = 1.25e9, 50e-6  # 10 GbE


def gradient_floats(model):
    """Trained floats: every float initializer but BatchNormalization's statistics (its scale and bias fold into the
    convolution before training; the few clips per layer are left out)."""
    stats = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT and t.name not in stats)


def allreduce_seconds(counts, transport):
    command = ["mpirun", "--oversubscribe", "-np", "2"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    if transport == "tcp":
        command += ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"]
    out = subprocess.run(command + [os.path.join(RELEASE, "allreduce-bench"), *map(str, counts)],
                         capture_output=True, text=True, check=True).stdout
    return [float(line.split()[2]) for line in out.splitlines()]


def step_seconds(name, make, shape, batch):
    path = os.path.join(WORK, f"dist_{name}.onnx")
    if not os.path.exists(path):
        onnx.save(make(), path)
    data = os.path.join(WORK, f"dist_{name}.npz")
    steps = 3
    np.savez(data, input=np.random.default_rng(0).standard_normal((batch * steps,) + shape).astype(np.float32))
    cfg = os.path.join(WORK, "dist_int8.cfg")
    with open(cfg, "w") as f:
        f.write(CFG)
    out = subprocess.run([os.path.join(RELEASE, "amct-pipe"), "retrain", path, "--cfg", cfg, "--data", data, "-o",
                          os.path.join(WORK, "dist_out.onnx"), "--batch-size", str(batch), "--steps", str(steps),
                          "--json", "--quiet"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name}: {out.stderr[-1500:]}")
    return json.loads(out.stdout)["retrain"]["epochs"][0]["seconds"] / steps, path


def ring(n, nbytes):
    return 2 * (n - 1) / n * nbytes / BANDWIDTH + 2 * (n - 1) * LATENCY


def main():
    os.makedirs(WORK, exist_ok=True)
    names = sys.argv[1:] or list(CASES)
    rows = []
    for name in names:
        make, shape, batch = CASES[name]
        step, path = step_seconds(name, make, shape, batch)
        rows.append((name, gradient_floats(onnx.load(path, load_external_data=False)), batch, step))
    tcp = allreduce_seconds([r[1] for r in rows], "tcp")
    shm = allreduce_seconds([r[1] for r in rows], "shm")
    print(f"{'model':<14} {'grad MB':>8} {'batch':>5} {'step s':>7} {'AR tcp s':>9} {'AR shm s':>9} {'AR/step':>8} "
          f"{'8×10GbE s':>10} {'32×10GbE s':>11} {'eff 8':>6} {'eff 32':>7}")
    for (name, floats, batch, step), t, s in zip(rows, tcp, shm):
        nbytes = 4 * floats
        r8, r32 = ring(8, nbytes), ring(32, nbytes)
        print(f"{name:<14} {nbytes / 1e6:>8.1f} {batch:>5} {step:>7.3f} {t:>9.4f} {s:>9.4f} {t / step:>7.1%} "
              f"{r8:>10.4f} {r32:>11.4f} {step / (step + r8):>6.0%} {step / (step + r32):>7.0%}")


if __name__ == "__main__":
    main()
