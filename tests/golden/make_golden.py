#!/usr/bin/python3
"""Writes the golden files that tests/models/test_golden.cpp compares our models with (llm.c's test_gpt2 idea).

For each model (torchvision resnet18 and resnet50 with a 1-channel stem and 10 classes, and a PyTorch CIFAR
resnet20 written to match models/resnet.cpp), it:
  1. fills every parameter and BN buffer from a counter-based generator that the C++ test re-implements
     (splitmix64 of fnv1a64(name) + index -> uniform in [-1, 1), scaled per tensor kind, rounded to float32),
     because full weights and gradients of resnet18 would not fit the size budget (< 2 MB per file);
  2. runs one training-mode forward on a fixed input in float64, cross-entropy loss (mean), backward;
  3. writes input, labels, logits, loss, the BN buffers after the step, per-tensor statistics of the weights
     (to prove both generators agree) and of the gradients (sum, L2 norm, max |g|), and gradient samples
     (all elements for tensors of <= 1024 elements, else elements (k * 1000003) mod numel for k < 1024).
The reference is computed in float64 and stored as float32 (statistics as float64), so it is exact to float32
storage round-off; the C++ test runs our model in float64 (tight tolerance) and in float32 (loose tolerance).
PyTorch's own float32 error against its float64 run is stored too (pt32err.*) to put the latter in context, and
so is the error of PyTorch's bf16 mixed precision (torch.autocast on the CPU, dtype bfloat16, float32 weights)
against the same float64 run (ptbf16err.*: logits, and each parameter's gradient samples), which bounds our
--precision bf16 run in the C++ test.

Run by hand from the repository root with Debian's torch (python3-torch, python3-torchvision):
    /usr/bin/python3 tests/golden/make_golden.py
and commit tests/golden/*.safetensors. The format is safetensors: an 8-byte little-endian header length, a
JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then raw little-endian data.
"""
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

MASK = (1 << 64) - 1
SAMPLES = 1024
SAMPLE_STRIDE = 1000003  # a prime: k * stride mod numel visits distinct, well-spread elements


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(name, n):
    """n values in [-1, 1), exactly representable in float64: 2 * (z >> 11) * 2^-53 - 1."""
    with np.errstate(over="ignore"):
        x = np.uint64(fnv1a64(name)) + np.arange(n, dtype=np.uint64)
    u = (splitmix64(x) >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    return 2.0 * u - 1.0


def generated(name, shape):
    """The value rule the C++ test repeats (test_golden.cpp, generated_values)."""
    n = int(np.prod(shape))
    u = uniform(name, n)
    leaf = name.rsplit(".", 1)[-1]
    if len(shape) == 4:  # conv weight: uniform with variance 2 / fan_in
        v = math.sqrt(6.0 / (shape[1] * shape[2] * shape[3])) * u
    elif len(shape) == 2:  # fc weight
        v = (1.0 / math.sqrt(shape[1])) * u
    elif name.startswith("fc."):  # fc bias
        v = 0.1 * u
    elif leaf == "weight":  # BN gamma
        v = 1.0 + 0.2 * u
    elif leaf == "bias":  # BN beta
        v = 0.2 * u
    elif leaf == "running_mean":
        v = 0.1 * u
    elif leaf == "running_var":
        v = 1.0 + 0.25 * (u + 1.0)
    else:
        raise ValueError("no rule for " + name)
    return v.astype(np.float32).reshape(shape)


class CifarBasicBlock(nn.Module):
    """models/blocks.cpp BasicBlock with the option-A shortcut (zero channels split evenly on both sides)."""

    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.inp, self.planes, self.stride = inp, planes, stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.stride != 1 or self.inp != self.planes:
            front = (self.planes - self.inp) // 2
            sc = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, front, self.planes - self.inp - front))
        return F.relu(out + sc)


class CifarResNet(nn.Module):
    def __init__(self, n, in_channels, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        inp = 16
        for i, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                blocks.append(CifarBasicBlock(inp, planes, 2 if (b == 0 and i > 0) else 1))
                inp = planes
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def torchvision_net(name):
    m = getattr(torchvision.models, name)(num_classes=10)
    m.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # Fashion-MNIST stem: one input channel
    return m


def sample_indices(numel):
    if numel <= SAMPLES:
        return np.arange(numel, dtype=np.int64)
    return (np.arange(SAMPLES, dtype=np.int64) * SAMPLE_STRIDE) % numel


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.float32: "F32", np.float64: "F64", np.int32: "I32"}[arr.dtype.type]
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def make(model_name, model, input_shape, labels, out_dir):
    params = [n for n, _ in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers() if not n.endswith("num_batches_tracked")]
    state = {n: torch.from_numpy(generated(n, tuple(t.shape))) for n, t in model.state_dict().items()
             if not n.endswith("num_batches_tracked")}
    model.load_state_dict(state, strict=False)
    model32 = copy.deepcopy(model).train()  # PyTorch's own float32 run, to show the size of float32 round-off
    model.double().train()

    x32 = generated_input(input_shape)
    x = torch.from_numpy(x32).double()
    y = torch.tensor(labels, dtype=torch.int64)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()

    out = {"input": x32, "labels": np.array(labels, dtype=np.int32),
           "logits": logits.detach().numpy().astype(np.float32), "loss": np.array([loss.item()], dtype=np.float64)}
    sd = dict(model.named_parameters())
    for n in params + buffers:
        w = state[n].double().numpy().ravel()
        out["weightstat." + n] = np.array([w.sum(), (w * w).sum()], dtype=np.float64)
    for n in params:
        g = sd[n].grad.detach().numpy().ravel()
        out["gradstat." + n] = np.array([g.sum(), math.sqrt((g * g).sum()), np.abs(g).max()], dtype=np.float64)
        out["grad." + n] = g[sample_indices(g.size)].astype(np.float32)
    # max |float32 - float64| / max |float64| of PyTorch itself, per tensor: context for our float32 tolerance.
    logits32 = model32(torch.from_numpy(x32))
    F.cross_entropy(logits32, y).backward()
    sd32 = dict(model32.named_parameters())
    rel = lambda a, b: float((a.double() - b).abs().max() / b.abs().max())
    out["pt32err.logits"] = np.array([rel(logits32.detach(), logits.detach())], dtype=np.float64)
    out["pt32err.grads"] = np.array([rel(sd32[n].grad, sd[n].grad) for n in params], dtype=np.float64)
    # bf16 mixed precision as a PyTorch user runs it: autocast over the float32 model, loss in float32.
    model16 = copy.deepcopy(model32)
    model16.zero_grad()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits16 = model16(torch.from_numpy(x32))
    F.cross_entropy(logits16.float(), y).backward()
    sd16 = dict(model16.named_parameters())
    out["ptbf16err.logits"] = np.array([rel(logits16.detach().float(), logits.detach())], dtype=np.float64)
    # On the gradient samples, the elements the C++ test compares.
    sampled = lambda t: t.detach().double().reshape(-1)[torch.from_numpy(sample_indices(t.numel()))]
    out["ptbf16err.grads"] = np.array([rel(sampled(sd16[n].grad), sampled(sd[n].grad)) for n in params],
                                      dtype=np.float64)
    bufs = dict(model.named_buffers())
    for n in buffers:
        out["after." + n] = bufs[n].detach().numpy().astype(np.float32)
    meta = {"model": model_name, "param_order": ",".join(params), "buffer_order": ",".join(buffers),
            "samples": str(SAMPLES), "sample_stride": str(SAMPLE_STRIDE), "torch": torch.__version__,
            "torchvision": torchvision.__version__}
    path = os.path.join(out_dir, model_name + ".safetensors")
    write_safetensors(path, out, meta)
    print("%s: %d parameter tensors, %d buffers, loss %.6f, %d bytes -> %s"
          % (model_name, len(params), len(buffers), loss.item(), os.path.getsize(path), path))


def generated_input(shape):
    return (math.sqrt(3.0) * uniform("input", int(np.prod(shape)))).astype(np.float32).reshape(shape)


def main():
    out_dir = os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)  # only the module constructors draw from it; every value is then overwritten
    make("resnet18", torchvision_net("resnet18"), (4, 1, 64, 64), [3, 7, 1, 9], out_dir)
    make("resnet50", torchvision_net("resnet50"), (2, 1, 64, 64), [0, 5], out_dir)
    make("resnet20", CifarResNet(3, 1, 10), (4, 1, 32, 32), [2, 4, 6, 8], out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
