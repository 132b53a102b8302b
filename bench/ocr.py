#!/usr/bin/env python3
"""PaddleOCR's exports as shipped (the `rapidocr_onnxruntime` wheel's models/), rendered text lines as data, and
scoring in onnxruntime: the real-model check of `amct-pipe retrain` (issue 17) and a bench row.

    .venv/bin/python bench/ocr.py fetch                      # the wheel from PyPI into bench-work/ocr (models only)
    .venv/bin/python bench/ocr.py data cls OUT.npz N SEED    # N lines (half turned 180°): x [N,3,48,192], label
    .venv/bin/python bench/ocr.py data rec OUT.npz N SEED    # N lines: x [N,3,48,320]; OUT.npz.txt the texts
    .venv/bin/python bench/ocr.py score cls MODEL.onnx DATA.npz   # direction accuracy
    .venv/bin/python bench/ocr.py score rec MODEL.onnx DATA.npz   # character accuracy (1 − edit distance / length, leading and trailing spaces dropped)

Lines: random words of letters, digits and punctuation in DejaVu Sans/Serif/Mono (Debian's fonts-dejavu-core) at
26–40 px, dark on light with noise; preprocessed as PaddleOCR does (height 48, width ceil(48·w/h) up to W, (x/255 −
0.5)/0.5, zeros padded on the right after normalisation).
"""
import glob
import math
import os
import subprocess
import sys
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench-work", "ocr")
WHEEL = "rapidocr_onnxruntime==1.4.4"
MODELS = {"cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx", "rec": "ch_PP-OCRv4_rec_infer.onnx",
          "det": "ch_PP-OCRv4_det_infer.onnx"}
WIDTH = {"cls": 192, "rec": 320}
FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf"]
# Letters and digits without the pairs no reader tells apart in these fonts (l/I/1, O/0/o).
ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def fetch():
    """The models of the wheel, extracted once; returns {kind: path}."""
    paths = {k: os.path.join(WORK, v) for k, v in MODELS.items()}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    os.makedirs(WORK, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", WORK, WHEEL], check=True)
    wheel = glob.glob(os.path.join(WORK, "rapidocr_onnxruntime-*.whl"))[0]
    with zipfile.ZipFile(wheel) as z:
        for kind, name in MODELS.items():
            with open(paths[kind], "wb") as f:
                f.write(z.read(f"rapidocr_onnxruntime/models/{name}"))
    return paths


def font_path(name):
    hits = glob.glob(f"/usr/share/fonts/truetype/dejavu/{name}")
    if not hits:
        raise SystemExit(f"font {name} is missing: apt-get install fonts-dejavu-core")
    return hits[0]


def random_text(rng):
    words = []
    for _ in range(rng.integers(1, 4)):
        n = int(rng.integers(2, 8))
        words.append("".join(rng.choice(list(ALPHABET), n)))
    return " ".join(words)


def render(text, rng):
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.truetype(font_path(FONTS[rng.integers(len(FONTS))]), int(rng.integers(26, 41)))
    left, top, right, bottom = font.getbbox(text)
    pad = [int(v) for v in rng.integers(2, 10, 4)]
    w, h = right - left + pad[0] + pad[2], bottom - top + pad[1] + pad[3]
    bg = int(rng.integers(200, 256))
    img = Image.new("RGB", (w, h), (bg, bg, bg))
    ink = int(rng.integers(0, 70))
    ImageDraw.Draw(img).text((pad[0] - left, pad[1] - top), text, font=font, fill=(ink, ink, ink))
    a = np.asarray(img, dtype=np.float32) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def preprocess(img, width, height=48):
    """PaddleOCR's resize_norm_img: height 48, width min(ceil(48·w/h), W), normalised, zero padding on the right."""
    from PIL import Image
    w, h = img.size
    rw = min(width, int(math.ceil(height * w / h)))
    a = np.asarray(img.resize((rw, height), Image.BILINEAR), dtype=np.float32).transpose(2, 0, 1)
    a = (a / 255 - 0.5) / 0.5
    out = np.zeros((3, height, width), np.float32)
    out[:, :, :rw] = a
    return out


def make(kind, out, n, seed):
    rng = np.random.default_rng(seed)
    xs, labels, texts = [], [], []
    for i in range(n):
        text = random_text(rng)
        img = render(text, rng)
        label = i % 2 if kind == "cls" else 0
        if label:
            img = img.rotate(180)
        xs.append(preprocess(img, WIDTH[kind]))
        labels.append(label)
        texts.append(text)
    arrays = {"x": np.stack(xs)}
    if kind == "cls":
        arrays["label"] = np.array(labels, np.int64)
    else:  # the ground truth beside the data (amct-pipe reads numeric arrays only)
        with open(out + ".txt", "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
    np.savez(out, **arrays)


def characters(model):
    import onnx
    m = onnx.load(model, load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    if "character" not in meta:
        m = onnx.load(fetch()["rec"], load_external_data=False)
        meta = {p.key: p.value for p in m.metadata_props}
    return ["<blank>"] + meta["character"].splitlines() + [" "]


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


# INT4 QDQ: the default level fuses into QLinearConv, which rejects 4-bit (the run summary says so).
try:
    import onnxruntime as _ort
    BASIC = _ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
except ImportError:
    BASIC = None


def outputs(model, x, batch=32):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.graph_optimization_level = BASIC
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def score(kind, model, data):
    d = np.load(data)
    y = outputs(model, d["x"])
    if kind == "cls":
        return float((y.argmax(-1) == d["label"]).mean())
    chars = characters(model)
    errors = total = 0
    with open(data + ".txt", encoding="utf-8") as f:
        texts = f.read().splitlines()
    for probs, text in zip(y, texts):
        ids = probs.argmax(-1)
        decoded = "".join(chars[k] for i, k in enumerate(ids) if k != 0 and (i == 0 or k != ids[i - 1]))
        errors += edit_distance(decoded.strip(), str(text))
        total += len(str(text))
    return 1 - errors / total


def main(argv):
    if argv[:1] == ["fetch"]:
        print("\n".join(f"{k} {v}" for k, v in fetch().items()))
    elif argv[:1] == ["data"]:
        make(argv[1], argv[2], int(argv[3]), int(argv[4]))
    elif argv[:1] == ["score"]:
        print(f"{score(argv[1], argv[2], argv[3]):.4f}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
