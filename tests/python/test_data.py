"""Data sources (issue 20): image folders, class folders and list files decoded and preprocessed as PIL + numpy do
(torchvision's order: resize, crop, then (x·scale − mean)/std; PaddleOCR's keep-ratio-pad), lazy .npz shards, and the
labels of class folders and list files reaching `retrain`. Images are made here, small."""
import json
import math
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import ortutil
from conftest import FIXTURES, run

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def smooth_image(rng, h, w, mode="RGB"):
    """A random image with some spatial structure (so resampling matters), 8-bit."""
    base = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3)).astype(np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BICUBIC)
    noisy = np.clip(np.asarray(img, np.int16) + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(noisy)
    return img.convert(mode) if mode != "RGB" else img


def image_folder(root, rng):
    """Five images of different sizes and kinds: PNG RGB, a JPEG, gray PNG, RGBA PNG, a wide one."""
    os.makedirs(root, exist_ok=True)
    smooth_image(rng, 37, 29).save(os.path.join(root, "a.png"))
    smooth_image(rng, 30, 44).save(os.path.join(root, "b.jpg"), quality=92)
    smooth_image(rng, 25, 25, "L").save(os.path.join(root, "c.png"))
    smooth_image(rng, 33, 40, "RGBA").save(os.path.join(root, "d.png"))
    smooth_image(rng, 16, 70).save(os.path.join(root, "e.png"))
    return sorted(os.path.join(root, n) for n in os.listdir(root))


def reference(path, resize=None, crop=None, keep=None, scale=1 / 255, mean=(0, 0, 0), std=(1, 1, 1), bgr=False,
              gray=False):
    """PIL + numpy: what torchvision's Resize/CenterCrop/ToTensor/Normalize (or PaddleOCR's resize_norm_img) give."""
    im = Image.open(path).convert("L" if gray else "RGB")
    if keep:
        h, w = keep
        rw = min(math.ceil(h * im.size[0] / im.size[1]), w)
        im = im.resize((rw, h), Image.BILINEAR)
    if isinstance(resize, int):
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(resize * long / short)
        im = im.resize((resize, new_long) if w <= h else (new_long, resize), Image.BILINEAR)
    elif resize:
        im = im.resize((resize[1], resize[0]), Image.BILINEAR)
    if crop:
        w, h = im.size
        top, left = int(round((h - crop[0]) / 2.0)), int(round((w - crop[1]) / 2.0))
        im = im.crop((left, top, left + crop[1], top + crop[0]))
    x = np.asarray(im, np.float32)
    x = (x[..., None] if gray else x).transpose(2, 0, 1)
    if bgr:
        x = x[::-1]
    mean, std = np.float32(mean)[:, None, None], np.float32(std)[:, None, None]
    x = (x * np.float32(scale) - mean) / std
    if keep:
        x = np.pad(x, ((0, 0), (0, 0), (0, keep[1] - x.shape[2])))
    return x.astype(np.float32)


def passthrough_model(path, channels=3):
    """y = x + 0: what `run` writes is the preprocessed input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, "H", "W"])
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    g = helper.make_graph([helper.make_node("Add", ["x", "zero"], ["y"])], "pass", [x], [y], [zero])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


def conv_model(path, rng):
    """Conv 3→4 (3×3), Relu, GlobalAveragePool, Flatten: a small image model."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    w = numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
    g = helper.make_graph(nodes, "conv", [x], [y], [w, b])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


CASES = {
    "resize": dict(flags=["--resize", "20,24"], ref=dict(resize=(20, 24))),
    "shorter-crop-imagenet": dict(flags=["--resize", "18", "--crop", "14,15", "--mean", ",".join(map(str, IMAGENET_MEAN)),
                                         "--std", ",".join(map(str, IMAGENET_STD))],
                                  ref=dict(resize=18, crop=(14, 15), mean=IMAGENET_MEAN, std=IMAGENET_STD)),
    "upscale-bgr": dict(flags=["--resize", "48,50", "--bgr", "--mean", "0.1,0.2,0.3"],
                        ref=dict(resize=(48, 50), bgr=True, mean=(0.1, 0.2, 0.3))),
    "keep-ratio-pad": dict(flags=["--keep-ratio-pad", "12,40", "--mean", "0.5", "--std", "0.5"],
                           ref=dict(keep=(12, 40), mean=(0.5,) * 3, std=(0.5,) * 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_preprocessing_matches_pil_numpy(tmp_path, case):
    files = image_folder(str(tmp_path / "images"), np.random.default_rng(1))
    passthrough_model(str(tmp_path / "m.onnx"))
    spec = CASES[case]
    run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "images", "-o", tmp_path / "out.npz", *spec["flags"])
    got = np.load(tmp_path / "out.npz")["y"]
    want = np.stack([reference(f, **spec["ref"]) for f in files])
    assert got.shape == want.shape
    # within one 8-bit step per element, in the normalised units
    tolerance = 1 / 255 / min(spec["ref"].get("std", (1,))) + 1e-6
    assert np.abs(got - want).max() <= tolerance, np.abs(got - want).max()


def test_gray_model_gets_pil_luma(tmp_path):
    files = image_folder(str(tmp_path / "images"), np.random.default_rng(2))
    passthrough_model(str(tmp_path / "m.onnx"), channels=1)
    run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "images", "-o", tmp_path / "out.npz", "--resize", "9,11")
    want = np.stack([reference(f, resize=(9, 11), gray=True) for f in files])
    assert np.abs(np.load(tmp_path / "out.npz")["y"] - want).max() <= 1 / 255 + 1e-6


def class_folders(root, rng, per_class=2, classes=("cat", "dog", "emu"), size=(20, 18), mode="RGB"):
    files = []
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            p = os.path.join(root, c, f"{i:02d}.png")
            smooth_image(rng, *size, mode).save(p)
            files.append(p)
    return files


def test_run_on_class_folders_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(3)
    files = class_folders(str(tmp_path / "train"), rng)
    conv_model(str(tmp_path / "m.onnx"), rng)
    flags = ["--resize", "16,16", "--mean", ",".join(map(str, IMAGENET_MEAN)), "--std", ",".join(map(str, IMAGENET_STD))]
    run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "train", "-o", tmp_path / "out.npz", *flags)
    x = np.stack([reference(f, resize=(16, 16), mean=IMAGENET_MEAN, std=IMAGENET_STD) for f in files])
    want = ortutil.run(str(tmp_path / "m.onnx"), {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-4, atol=1e-4)


def test_data_summary_and_preview(tmp_path):
    rng = np.random.default_rng(4)
    files = class_folders(str(tmp_path / "train"), rng, classes=("b", "a"))
    r = run("data", tmp_path / "train", "--resize", "10,12", "--mean", "0.5", "--std", "0.25", "--json",
            "--preview", tmp_path / "p.png", "--batch-size", "3")
    summary = json.loads(r.stdout)
    assert summary["count"] == 4 and summary["classes"] == ["a", "b"]
    assert summary["label_counts"] == {"0": 2, "1": 2}
    assert summary["inputs"]["input"]["shape"] == [3, 10, 12]
    x = np.stack([reference(f, resize=(10, 12), mean=(0.5,) * 3, std=(0.25,) * 3) for f in sorted(files)])
    assert abs(summary["inputs"]["input"]["min"] - x.min()) < 1e-3 and abs(summary["inputs"]["input"]["max"] - x.max()) < 1e-3
    preview = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"), np.int16)
    want = np.concatenate([np.asarray(Image.open(f).convert("RGB").resize((12, 10), Image.BILINEAR), np.int16)
                           for f in sorted(files)[:3]], axis=1)
    assert preview.shape == want.shape and np.abs(preview - want).max() <= 1
    text = run("data", tmp_path / "train", "--resize", "10,12").stdout
    assert "2 classes" in text and "0 a: 2 samples" in text


def test_list_file_keeps_its_order_and_paths(tmp_path):
    rng = np.random.default_rng(5)
    files = image_folder(str(tmp_path / "imgs"), rng)
    order = [files[3], files[0], files[4]]
    (tmp_path / "list.txt").write_text("".join(f"imgs/{os.path.basename(f)}\t{i % 2}\n" for i, f in enumerate(order)))
    passthrough_model(str(tmp_path / "m.onnx"))
    run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "list.txt", "-o", tmp_path / "out.npz", "--resize", "8,8")
    want = np.stack([reference(f, resize=(8, 8)) for f in order])
    assert np.abs(np.load(tmp_path / "out.npz")["y"] - want).max() <= 1 / 255 + 1e-6


def passthrough_cast_model(path):
    """y = x + 0 and k = int64(y · 100): two outputs of different types."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, ["N", 3, "H", "W"])
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    hundred = numpy_helper.from_array(np.full((1,), 100, np.float32), "hundred")
    nodes = [helper.make_node("Add", ["x", "zero"], ["y"]), helper.make_node("Mul", ["y", "hundred"], ["h"]),
             helper.make_node("Cast", ["h"], ["k"], to=TensorProto.INT64)]
    g = helper.make_graph(nodes, "pass", [x], [y, k], [zero, hundred])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)


@pytest.mark.parametrize("batch", [1, 3, 7, 100])
def test_run_streams_batches_in_the_list_order(tmp_path, batch):
    """Seven samples in batches of 1, 3 (3+3+1), 7 and more: the .npz written batch by batch holds every output in the
    list's order, as np.load reads it."""
    files = image_folder(str(tmp_path / "imgs"), np.random.default_rng(12))
    order = [files[i] for i in (4, 1, 1, 0, 3, 2, 4)]
    (tmp_path / "list.txt").write_text("".join(f"imgs/{os.path.basename(f)}\t0\n" for f in order))
    passthrough_cast_model(str(tmp_path / "m.onnx"))
    run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "list.txt", "-o", tmp_path / "out.npz", "--resize", "9,10",
        "--batch-size", batch)
    want = np.stack([reference(f, resize=(9, 10)) for f in order])
    with np.load(tmp_path / "out.npz") as out:
        assert list(out.keys()) == ["y", "k"] and out["y"].shape == (7, 3, 9, 10) and out["k"].dtype == np.int64
        assert np.abs(out["y"] - want).max() <= 1 / 255 + 1e-6
        np.testing.assert_array_equal(out["k"], (out["y"] * np.float32(100)).astype(np.int64))
    assert sorted(os.listdir(tmp_path)) == ["imgs", "list.txt", "m.onnx", "out.npz"]


def test_a_bad_image_in_a_late_batch_leaves_no_output(tmp_path):
    files = image_folder(str(tmp_path / "imgs"), np.random.default_rng(13))
    (tmp_path / "imgs" / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "list.txt").write_text("".join(f"imgs/{os.path.basename(f)}\t0\n" for f in files) + "imgs/z.png\t0\n")
    passthrough_model(str(tmp_path / "m.onnx"))
    r = run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "list.txt", "-o", tmp_path / "out.npz", "--resize", "8,8",
            "--batch-size", "2", check=False)
    assert r.returncode == 1 and "z.png" in r.stderr and "Fatal error" not in r.stderr, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["imgs", "list.txt", "m.onnx"]


def test_a_channels_last_model_takes_images_with_layout_nhwc(tmp_path):
    """Without --layout nhwc, a [N, H, W, 3] input is refused naming it and the flag; with it, the samples are the
    PIL + numpy reference transposed to [H, W, C], and `data --preview` still draws the images."""
    files = image_folder(str(tmp_path / "imgs"), np.random.default_rng(14))
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 20, 24, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 20, 24, 3])
    g = helper.make_graph([helper.make_node("Relu", ["image"], ["y"])], "nhwc", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    flags = ["--resize", "20,24", "--mean", "0.5", "--bgr"]
    r = run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "imgs", "-o", tmp_path / "out.npz", *flags, check=False)
    assert r.returncode == 1 and not (tmp_path / "out.npz").exists(), r.stderr
    assert "model input 'image' has shape [N, 20, 24, 3], channels last (NHWC)" in r.stderr, r.stderr
    assert "--layout nhwc" in r.stderr
    run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "imgs", "-o", tmp_path / "out.npz", *flags,
        "--layout", "nhwc", "--batch-size", "2")
    x = np.stack([reference(f, resize=(20, 24), mean=(0.5,) * 3, bgr=True).transpose(1, 2, 0) for f in files])
    want = ortutil.run(str(tmp_path / "m.onnx"), {"image": x})[0]
    assert np.abs(np.load(tmp_path / "out.npz")["y"] - want).max() <= 1 / 255 + 1e-6
    run("data", tmp_path / "imgs", "--model", tmp_path / "m.onnx", *flags, "--layout", "nhwc", "--preview",
        tmp_path / "p.png", "--batch-size", "2")
    preview = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"), np.int16)
    want = np.concatenate([np.asarray(Image.open(f).convert("RGB").resize((24, 20), Image.BILINEAR), np.int16)
                           for f in files[:2]], axis=1)
    assert preview.shape == want.shape and np.abs(preview - want).max() <= 1


def retrain_digits(tmp_path, data, *extra):
    out = tmp_path / "r.onnx"
    r = run("retrain", os.path.join(FIXTURES, "digits_cnn.onnx"), "--cfg", os.path.join(FIXTURES, "configs", "digits_cnn_int4.cfg"),
            "--data", data, "-o", out, "--steps", "2", "--batch-size", "2", "--json", "--quiet", "--resize", "8,8",
            "--mean", "0.5", "--std", "0.5", *extra)
    x = np.zeros((1, 1, 8, 8), np.float32)
    assert ortutil.run(str(out), {"image": x})[0].shape == (1, 10)
    return json.loads(r.stdout)


def test_retrain_from_class_folders_and_list_file(tmp_path):
    rng = np.random.default_rng(6)
    class_folders(str(tmp_path / "digits"), rng, per_class=3, classes=("0", "1", "2"), size=(12, 12), mode="L")
    summary = retrain_digits(tmp_path, tmp_path / "digits", "--augment", "flip")
    assert "labels from the class folders" in json.dumps(summary)
    lines = [f"digits/{c}/{i:02d}.png\t{c}\n" for c in "210" for i in range(3)]
    (tmp_path / "train.txt").write_text("".join(lines))
    summary = retrain_digits(tmp_path, tmp_path / "train.txt")
    assert "cross-entropy" in json.dumps(summary)
    summary = retrain_digits(tmp_path, tmp_path / "train.txt", "--labels", "none")
    assert "distillation" in json.dumps(summary)


def test_text_labels_calibrate_but_do_not_train(tmp_path):
    rng = np.random.default_rng(7)
    image_folder(str(tmp_path / "imgs"), rng)
    (tmp_path / "rec.txt").write_text("imgs/a.png\thello\nimgs/b.jpg\tworld\n")
    r = run("retrain", os.path.join(FIXTURES, "digits_cnn.onnx"), "--cfg", os.path.join(FIXTURES, "configs", "digits_cnn_int4.cfg"),
            "--data", tmp_path / "rec.txt", "-o", tmp_path / "r.onnx", "--steps", "1", "--resize", "8,8", check=False)
    assert r.returncode == 1 and "rec.txt:1" in r.stderr and "not an integer" in r.stderr, r.stderr
    assert not (tmp_path / "r.onnx").exists()


@pytest.mark.parametrize("content, message", [
    ("imgs/a.png 3\n", "list.txt:1: no tab"),
    ("imgs/a.png\t0\nimgs/missing.png\t1\n", "list.txt:2: 'imgs/missing.png' is not a readable file"),
    ("imgs/a.png\t0\nimgs/broken.png\t1\n", "broken.png: does not decode as PNG"),
    ("imgs/a.png\t0\nimgs/text.jpg\t1\n", "text.jpg: neither a JPEG nor a PNG"),
])
def test_bad_images_and_lists_are_errors_naming_them(tmp_path, content, message):
    image_folder(str(tmp_path / "imgs"), np.random.default_rng(8))
    png = (tmp_path / "imgs" / "a.png").read_bytes()
    (tmp_path / "imgs" / "broken.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "imgs" / "text.jpg").write_text("not an image")
    (tmp_path / "list.txt").write_text(content)
    passthrough_model(str(tmp_path / "m.onnx"))
    r = run("run", tmp_path / "m.onnx", "--inputs", tmp_path / "list.txt", "-o", tmp_path / "out.npz", "--resize", "8,8",
            check=False)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert "Fatal error" not in r.stderr and not (tmp_path / "out.npz").exists()


def test_npz_shards_and_lazy_reads_give_the_same_clips(tmp_path):
    """A stored .npz (read batch by batch), a compressed one and a folder of shards calibrate to the same record."""
    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, (12, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "all.npz", image=x)
    np.savez_compressed(tmp_path / "all_z.npz", image=x)
    os.makedirs(tmp_path / "shards")
    for i, part in enumerate(np.split(x, [5, 9])):
        np.save(tmp_path / "shards" / f"part{i}.npy", part)
    records = []
    for src in ["all.npz", "all_z.npz", "shards"]:
        rec = tmp_path / f"{src}.record"
        run(os.path.join(FIXTURES, "digits_cnn.onnx"), "--cfg", os.path.join(FIXTURES, "configs", "digits_cnn_int4.cfg"),
            "-o", tmp_path / "o.onnx", "--calib", tmp_path / src, "--batch-size", "3", "--record", rec, "--quiet")
        records.append(rec.read_text())
    assert records[0] == records[1] == records[2]
