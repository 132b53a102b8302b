#!/usr/bin/env python3
"""The PyTorch anchor of `make bench`'s retrain rows: the same architectures as bench/models.py (resnet18: CIFAR-style
basic blocks at 64×64; mobilenet_v2: inverted residuals at 96×96) trained on CPU with 2 threads, as torch.ao eager QAT
(Conv+BN(+ReLU) fused with `fuse_modules_qat`, the x86 QAT qconfig, `prepare_qat`) or as float training.

    python bench/torch_train.py resnet18|mobilenet_v2 qat|float BATCH STEPS IMAGE

Prints one JSON line: steady-state samples/s (after 2 warm-up steps) and the seconds per step. Runs only in the
bench-only venv (bench-work/torch-venv, from the CPU wheel on the machine); never a test dependency.
MobileNetV2 uses ReLU where the ONNX model has Clip(0, 6), as torchvision's quantizable MobileNetV2 does (fusable)."""
import json
import sys
import time

import torch
import torch.ao.quantization as tq
from torch import nn


def conv_bn(cin, cout, k, stride, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3, 1, relu=False)
        self.down = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else None
        self.add = nn.quantized.FloatFunctional()

    def forward(self, x):
        short = self.down(x) if self.down is not None else x
        return self.add.add_relu(self.conv2(self.conv1(x)), short)


class Inverted(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [conv_bn(cin, hidden, 1, 1)] if t != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, 1, relu=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.add = nn.quantized.FloatFunctional()

    def forward(self, x):
        y = self.body(x)
        return self.add.add(x, y) if self.residual else y


class Net(nn.Module):
    def __init__(self, stem, blocks, cout, classes):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.stem, self.blocks = stem, nn.Sequential(*blocks)
        self.fc = nn.Linear(cout, classes)

    def forward(self, x):
        x = self.blocks(self.stem(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


def resnet18(classes=10, width=64):
    blocks, cin = [], width
    for stage in range(4):
        cout = width * 2 ** stage
        for b in range(2):
            blocks.append(Basic(cin, cout, 2 if b == 0 and stage > 0 else 1))
            cin = cout
    return Net(conv_bn(3, width, 3, 1), blocks, cin, classes)


def mobilenet_v2(classes=10, width=16):
    blocks, cin = [], width
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2)]:
        for i in range(n):
            blocks.append(Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    return Net(conv_bn(3, width, 3, 2), blocks, cin, classes)


def fuse(model):
    chains = [m for m in model.modules()
              if isinstance(m, nn.Sequential) and len(m) in (2, 3) and isinstance(m[0], nn.Conv2d)]
    for m in chains:
        tq.fuse_modules_qat(m, [str(i) for i in range(len(m))], inplace=True)


def main():
    arch, mode, batch, steps, image = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}[arch]()
    model.train()
    if mode == "qat":
        fuse(model)
        model.qconfig = tq.get_default_qat_qconfig("x86")
        tq.prepare_qat(model, inplace=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, image, image)
    y = torch.randint(0, 10, (batch,))
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    print(json.dumps({"samples_per_second": batch / step, "step_seconds": step}))


if __name__ == "__main__":
    main()
