#!/usr/bin/env python3
"""`make bench`: whole-process figures for amct-pipe next to the Python equivalent on the same file.

Each row runs both commands RUNS times as separate processes under /usr/bin/time -v and prints the median wall time
and the median peak RSS. The ~100 MB ResNet-50-shaped model is generated into bench-work/ (never committed).

The "forward <arch>" rows time the executor (`amct-pipe run`, whole process: load, run, write) against one Python
process running an onnxruntime CPU session (bench/ort_run.py) on the same samples, for each architecture family of
models.BENCH (generated into bench-work/), and check that the outputs agree.

Only some rows: `BENCH_ONLY=forward` (or `python bench/bench.py forward`) runs the rows whose name contains any of
the comma-separated words; e.g. `BENCH_ONLY="forward svtr,forward ppocr"`. BENCH_RUNS sets RUNS (default 5).
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
ONLY = [w.strip() for w in (os.environ.get("BENCH_ONLY") or ",".join(sys.argv[1:])).split(",") if w.strip()]
AGREE = 1e-4  # max |amct-pipe - onnxruntime| over the output's max |onnxruntime| (the bar)


def selected(name):
    return not ONLY or any(word in name for word in ONLY)


def measure(cmd):
    """Median wall seconds and median peak RSS (bytes) of `cmd` over RUNS runs."""
    return measure_interleaved(cmd)[0][:2]


def measure_interleaved(*cmds):
    """(median wall seconds, median peak RSS bytes, median user+system CPU seconds) per command over RUNS rounds; each
    round runs every command once, in turn, so a change in machine load during the row falls on all of them alike."""
    walls, rss, cpu = [[] for _ in cmds], [[] for _ in cmds], [[] for _ in cmds]
    for _ in range(RUNS):
        for k, cmd in enumerate(cmds):
            start = time.perf_counter()
            result = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
            walls[k].append(time.perf_counter() - start)
            if result.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
            seconds = 0.0
            for line in result.stderr.splitlines():
                if "Maximum resident set size" in line:
                    rss[k].append(int(line.split(":")[1]) * 1024)
                elif "User time (seconds)" in line or "System time (seconds)" in line:
                    seconds += float(line.split(":")[1])
            cpu[k].append(seconds)
    return [tuple(map(statistics.median, m)) for m in zip(walls, rss, cpu)]


def stale(path):
    """A generated file is remade when missing or older than the generators in bench/models.py."""
    return not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(os.path.join(HERE, "models.py"))


def model_file():
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, "resnet50.onnx")
    if stale(path):
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
    # Executor forward at batch 8: see the "forward resnet50" row of forward_rows().
    x8 = samples_file("x8.npz", (8, 3, 224, 224))
    # Full INT8 with IFMR on 8 samples against onnxruntime.quantization.quantize_static (QDQ, per-channel, MinMax).
    yield ("int8 IFMR", [BINARY, model, "--cfg", os.path.join(HERE, "int8_ifmr.cfg"), "--calib", x8, "--batch-size", "8", "-o", out_a, "--quiet"],
           [PYTHON, os.path.join(HERE, "ort_quantize.py"), model, x8, out_p])
    # Per-layer sensitivity (issue 13) on the same 8 samples and config: compare with the `int8 IFMR` compress above.
    yield ("analyze", [BINARY, "analyze", model, "--cfg", os.path.join(HERE, "int8_ifmr.cfg"), "--calib", x8,
                       "--batch-size", "8", "--quiet"], None)
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


def samples_file(name, shape):
    """Seeded standard-normal samples for the model input "input", written once into bench-work/."""
    path = os.path.join(WORK, name)
    if not os.path.exists(path):
        import numpy as np
        np.savez(path, input=np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    return path


def forward_rows():
    """("forward <arch>", model, amct-pipe command, onnxruntime command, the two output files) per bench family."""
    sys.path.insert(0, HERE)
    import models
    for arch, (make, shape) in models.BENCH.items():
        name = f"forward {arch}"
        if not selected(name):
            continue
        path = model_file() if arch == "resnet50" else os.path.join(WORK, f"{arch}.onnx")
        if stale(path):
            import onnx
            onnx.save(make(), path)
        x = samples_file(f"x_{arch}_{'x'.join(map(str, shape))}.npz", shape)
        ours, theirs = os.path.join(WORK, f"y_{arch}_amct.npz"), os.path.join(WORK, f"y_{arch}_ort.npz")
        yield (name, path, [BINARY, "run", path, "--inputs", x, "-o", ours],
               [PYTHON, os.path.join(HERE, "ort_run.py"), path, x, theirs], (ours, theirs))


def agreement(ours, theirs):
    """max |amct-pipe - onnxruntime| / max |onnxruntime| over every output (shapes must match)."""
    import numpy as np
    a, b = np.load(ours), np.load(theirs)
    worst = 0.0
    for key in b.files:
        if key not in a.files or a[key].shape != b[key].shape:
            return float("inf")
        scale = float(np.abs(b[key]).max()) or 1.0
        worst = max(worst, float(np.abs(a[key].astype(np.float64) - b[key]).max()) / scale)
    return worst


def forward_main():
    """The executor table: wall and peak RSS of both processes, amct-pipe / onnxruntime, and output agreement."""
    header = f"{'job':<22} {'tool':<18} {'wall s':>8} {'peak RSS MB':>12} {'cpu s':>8} {'model MB':>9}"
    printed = False
    for name, path, ours, theirs, (out_a, out_o) in forward_rows():
        if not printed:
            load = os.getloadavg()[0]
            print(f"\nexecutor: amct-pipe run vs onnxruntime CPU session (one process each), {RUNS} runs each, "
                  f"interleaved, median; load average {load:.1f} on {os.cpu_count()} CPUs at the start")
            print(header)
            print("-" * len(header))
            printed = True
        size = os.path.getsize(path) / 1e6
        (wa, ra, ca), (wo, ro, co) = measure_interleaved(ours, theirs)
        print(f"{name:<22} {'amct-pipe':<18} {wa:>8.3f} {ra / 1e6:>12.1f} {ca:>8.2f} {size:>9.1f}")
        print(f"{name:<22} {'onnxruntime':<18} {wo:>8.3f} {ro / 1e6:>12.1f} {co:>8.2f} {size:>9.1f}")
        diff = agreement(out_a, out_o)
        verdict = "ok" if diff <= AGREE else f"MISMATCH (> {AGREE:g})"
        print(f"{name:<22} {'amct / ort':<18} {wa / wo:>7.2f}x {ra / ro:>11.2f}x {ca / co:>7.2f}x   "
              f"max|diff|/scale {diff:.1e} {verdict}", flush=True)


def main():
    model = model_file()
    size = os.path.getsize(model)
    chosen = [row for row in rows(model) if selected(row[0])]
    if chosen:
        print(f"model: {model} ({size / 1e6:.1f} MB), {RUNS} runs each, median; peak RSS from /usr/bin/time -v")
        header = f"{'job':<12} {'tool':<22} {'wall s':>8} {'peak RSS MB':>12} {'RSS/model':>10}"
        print(header)
        print("-" * len(header))
    for name, ours, theirs in chosen:
        results = []
        for tool, cmd in (("amct-pipe", ours), ("python", theirs)):
            if cmd is None:
                continue
            wall, rss = measure(cmd)
            results.append((wall, rss))
            print(f"{name:<12} {tool:<22} {wall:>8.3f} {rss / 1e6:>12.1f} {rss / size:>10.2f}")
        if len(results) == 2:
            print(f"{name:<12} {'python / amct-pipe':<22} {results[1][0] / results[0][0]:>7.2f}x {results[1][1] / results[0][1]:>11.2f}x")
    forward_main()
    retrain_main()
    memory_main()


RETRAIN_CFG = """
retrain_data_quant_config { ulq_quantize { dst_type: INT8 } }
retrain_weight_quant_config { arq_retrain { channel_wise: true dst_type: INT8 } }
"""


TORCH_PYTHON = os.path.join(WORK, "torch-venv", "bin", "python")


def torch_venv():
    """The bench-only PyTorch venv (bench-work/torch-venv), from a CPU wheel on the machine (TORCH_WHEEL, default any
    /opt/wheels/torch-*+cpu-*.whl) or else PyPI; None when neither is reachable (the rows then say so)."""
    import glob
    if os.path.exists(TORCH_PYTHON):
        return TORCH_PYTHON
    wheels = [os.environ["TORCH_WHEEL"]] if os.environ.get("TORCH_WHEEL") else sorted(glob.glob("/opt/wheels/torch-*+cpu-*.whl"))
    source = wheels[-1:] or ["torch"]  # PyPI's build brings GPU libraries: large, and only here
    venv = os.path.join(WORK, "torch-venv")
    if subprocess.run([sys.executable, "-m", "venv", venv]).returncode != 0:
        return None
    pip = [os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check"]
    if subprocess.run(pip + ["numpy"]).returncode != 0 or subprocess.run(pip + source).returncode != 0:
        return None
    return TORCH_PYTHON


def run_measured(cmd):
    """(stdout, peak RSS bytes) of one run under /usr/bin/time -v."""
    result = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    rss = [int(l.split(":")[1]) * 1024 for l in result.stderr.splitlines() if "Maximum resident set size" in l]
    return result.stdout, rss[0], result.stderr


def retrain_main():
    """Retraining (issue 18): steady-state samples/s and peak RSS of `amct-pipe retrain` (INT8 QAT, Adam, labels) next
    to PyTorch on the same architecture, batch and input shape (bench/torch_train.py: torch.ao eager QAT with fused
    Conv-BN-ReLU, and float training), and one training step against one forward pass of the same batch
    (`run --profile`). The SVTR-shaped recognizer trains by distillation (its own teacher forward included). Each
    figure is the median of RUNS runs; the ratio column is amct-pipe / PyTorch QAT."""
    import json
    import numpy as np
    import onnx
    sys.path.insert(0, HERE)
    import models
    cases = [("retrain resnet18 64x64 b32", "resnet18", lambda: models.resnet18(image=64), (3, 64, 64), 10, 32),
             ("retrain mobilenet_v2 96x96 b32", "mobilenet_v2", lambda: models.mobilenet_v2(image=96), (3, 96, 96), 10, 32),
             ("retrain svtr_rec 48x320 b16", None, lambda: models.svtr_rec(), (3, 48, 320), None, 16)]
    cases = [c for c in cases if selected(c[0])]
    if not cases:
        return
    cfg = os.path.join(WORK, "retrain_int8.cfg")
    os.makedirs(WORK, exist_ok=True)
    with open(cfg, "w") as f:
        f.write(RETRAIN_CFG)
    torch = torch_venv()
    print(f"\n{'job':<32} {'tool':<22} {'samples/s':>10} {'peak RSS MB':>12} {'step/forward':>13}")
    for name, arch, make, shape, classes, batch in cases:
        slug = name.split()[1]
        model = os.path.join(WORK, f"{slug}.onnx")
        if stale(model):
            onnx.save(make(), model)
        rng = np.random.default_rng(0)
        steps = 6
        data = os.path.join(WORK, f"{slug}_train.npz")
        arrays = {"input": rng.standard_normal((batch * steps,) + shape).astype(np.float32)}
        if classes:
            arrays["label"] = rng.integers(0, classes, batch * steps).astype(np.int64)
        np.savez(data, **arrays)
        x = os.path.join(WORK, f"{slug}_x.npz")
        np.savez(x, input=arrays["input"][:batch])
        labels = ["--labels", "label"] if classes else ["--lr", "1e-4"]
        ours = [BINARY, "retrain", model, "--cfg", cfg, "--data", data, "-o", os.path.join(WORK, "rt.onnx"),
                "--batch-size", str(batch), "--epochs", "2", "--json", "--quiet", *labels]
        rates, peaks, ratios = [], [], []
        for _ in range(RUNS):
            out, rss, _ = run_measured(ours)
            epoch = json.loads(out)["retrain"]["epochs"][1]  # steady state: the plans are built in epoch 1
            _, _, prof = run_measured([BINARY, "run", model, "--inputs", x, "-o", os.path.join(WORK, "y.npz"), "--profile"])
            forward = min(float(l.split()[-1]) for l in prof.splitlines() if l.startswith("total (ops)"))
            rates.append(epoch["samples_per_second"])
            peaks.append(rss)
            ratios.append(epoch["seconds"] / steps / forward)
        rate, peak = statistics.median(rates), statistics.median(peaks)
        print(f"{name:<32} {'amct-pipe (INT8 QAT)':<22} {rate:>10.1f} {peak / 1e6:>12.1f} {statistics.median(ratios):>12.2f}x",
              flush=True)
        if not arch:
            continue
        if not torch:
            print(f"{name:<32} {'pytorch':<22} {'(no torch: set TORCH_WHEEL or reach PyPI)':>40}")
            continue
        qat_rate = None
        for mode in ("qat", "float"):
            cmd = [torch, os.path.join(HERE, "torch_train.py"), arch, mode, str(batch), "4", str(shape[1])]
            results = [run_measured(cmd) for _ in range(RUNS)]
            trate = statistics.median(json.loads(r[0])["samples_per_second"] for r in results)
            tpeak = statistics.median(r[1] for r in results)
            qat_rate = qat_rate or trate
            print(f"{name:<32} {'pytorch ' + mode:<22} {trate:>10.1f} {tpeak / 1e6:>12.1f}", flush=True)
        print(f"{name:<32} {'amct / pytorch qat':<22} {rate / qat_rate:>9.2f}x", flush=True)


MEMORY_CFG = """
batch_num: 16
retrain_data_quant_config { ulq_quantize { dst_type: INT8 } }
retrain_weight_quant_config { arq_retrain { channel_wise: true dst_type: INT8 } }
"""


def image_folder(path, megabytes):
    """Text-line-shaped JPEGs of noise (about 0.3 MB each) up to `megabytes`, made once."""
    import numpy as np
    from PIL import Image
    done = os.path.join(path, f".complete-{megabytes}")
    if os.path.exists(done):
        return
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    total, i = 0, 0
    while total < megabytes * 1e6:
        name = os.path.join(path, f"{i:06d}.jpg")
        noise = rng.integers(0, 256, (96, 640, 3), dtype=np.uint8)
        Image.fromarray(noise).save(name, quality=95)
        total += os.path.getsize(name)
        i += 1
    open(done, "w").close()


def pool_model(path):
    """Conv 3→8 (4×4, stride 4) and GlobalAveragePool on [N, 3, 48, 320]: `run` over many images, small outputs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    if not os.path.exists(path):
        w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.3, (8, 3, 4, 4)).astype(np.float32), "w")
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], strides=[4, 4]),
                 helper.make_node("GlobalAveragePool", ["c"], ["y"])]
        g = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 48, 320])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 1, 1])], [w])
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def memory_main():
    """Peak RSS with bounded-memory data (issue 20): compress of the SVTR-shaped recognizer with 256 calibration
    samples at batch 16 (IFMR: two passes over the data, nothing gathered), and calibration and retraining (30 steps,
    distillation) from a folder of JPEG text lines (BENCH_IMAGES_MB, default 2048 MB) with --keep-ratio-pad 48,320, and
    `run` of a small pooling model over the whole folder (outputs written batch by batch)."""
    names = ["memory compress svtr 256", "memory compress images", "memory retrain images", "memory run images"]
    if not any(selected(n) for n in names):
        return
    import numpy as np
    import onnx
    sys.path.insert(0, HERE)
    import models
    os.makedirs(WORK, exist_ok=True)
    model = os.path.join(WORK, "svtr_rec.onnx")
    if stale(model):
        onnx.save(models.svtr_rec(), model)
    cfg = os.path.join(WORK, "memory_int8.cfg")
    with open(cfg, "w") as f:
        f.write(MEMORY_CFG)
    calib = os.path.join(WORK, "svtr_calib256.npz")
    if not os.path.exists(calib):
        np.savez(calib, input=np.random.default_rng(0).standard_normal((256, 3, 48, 320)).astype(np.float32))
    images, val = os.path.join(WORK, "images"), os.path.join(WORK, "images_val")
    megabytes = int(os.environ.get("BENCH_IMAGES_MB", "2048"))
    out = os.path.join(WORK, "memory_out.onnx")
    common = [model, "--cfg", cfg, "-o", out, "--batch-size", "16", "--quiet"]
    rows = [(names[0], [BINARY, *common, "--calib", calib]),
            (names[1], [BINARY, *common, "--calib", images, "--keep-ratio-pad", "48,320", "--mean", "0.5", "--std", "0.5"]),
            (names[2], [BINARY, "retrain", *common, "--data", images, "--val", val, "--steps", "30",
                        "--keep-ratio-pad", "48,320", "--mean", "0.5", "--std", "0.5"]),
            (names[3], [BINARY, "run", pool_model(os.path.join(WORK, "pool.onnx")), "--inputs", images, "-o",
                        os.path.join(WORK, "memory_run.npz"), "--batch-size", "16", "--quiet", "--keep-ratio-pad",
                        "48,320", "--mean", "0.5", "--std", "0.5"])]
    print(f"\n{'job':<28} {'wall s':>8} {'peak RSS MB':>12}   (images: {megabytes} MB of JPEGs)")
    for name, cmd in rows:
        if not selected(name):
            continue
        if "images" in name:
            image_folder(images, megabytes)
            os.makedirs(val, exist_ok=True)
            for n in sorted(os.listdir(images))[:64]:  # scoring (before/after) on 64 images, not the whole folder
                if not os.path.exists(os.path.join(val, n)):
                    os.symlink(os.path.join(images, n), os.path.join(val, n))
        wall, rss = measure(cmd)
        print(f"{name:<28} {wall:>8.2f} {rss / 1e6:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
