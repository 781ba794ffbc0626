#!/usr/bin/env python3
"""PyTorch reference for bench_models: the same models, shapes and training step, the same table and JSON keys.

One step = forward, cross-entropy loss, backward, SGD (momentum 0.9, weight decay 1e-4) on synthetic data already
on the device, 1 input channel, 10 classes. The first --warmup steps are not timed; then --steps steps are timed one
by one (CPU: time.perf_counter; CUDA: torch.cuda.Event pairs, one synchronisation at the end).

Models: torchvision ResNet-18/34/50/101/152 with a 1-channel stem (conv1 = Conv2d(1, 64, 7, 2, 3, bias=False)) and
10 classes; the CIFAR family (resnet20/32/44/56/110 with option-A shortcuts, plain20..110 without shortcuts) written
to match models/ in this repository.

Math modes: fp32 (TF32 off), tf32 (CUDA: TF32 matmul and cuDNN conv), amp_cl (CUDA: channels_last + autocast
float16 + GradScaler), bf16 (autocast bfloat16, NCHW: the semantics of our --precision bf16), bf16_cl (autocast
bfloat16 + channels_last, what a PyTorch user on a Hopper GPU runs; bf16 needs no GradScaler) and
bf16_cl_compile (the same under torch.compile, where it runs: a mode that fails to compile is reported and
skipped). On CPU fp32 and bf16 run (eager, oneDNN convolutions as PyTorch ships them; CPU autocast bf16).

Examples:
  /usr/bin/python3 benchmarks/pytorch_reference.py --device cpu --models resnet18 --batch 128 --res 28 --threads 2
  python3 benchmarks/pytorch_reference.py --device cuda --models resnet18,resnet50 --batch 128 --res 96 --json
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# Resident set at start-up (torch and its libraries loaded, no model yet): CPU peak memory is VmHWM minus this.
BASE_RSS_MB = 0.0

IMAGENET = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}


# ------------------------------------------------------------------ models
def imagenet_resnet(name, num_classes=10):
    m = getattr(torchvision.models, name)(num_classes=num_classes)
    m.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return m


class ShortcutA(nn.Module):
    """Option A (He et al. 2016, Sec. 4.2): x[:, :, ::s, ::s] widened with zero channels, split front and back."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.stride = stride
        self.front = (c_out - c_in) // 2
        self.back = c_out - c_in - self.front

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.front or self.back:
            x = F.pad(x, (0, 0, 0, 0, self.front, self.back))
        return x


class BasicBlockA(nn.Module):
    def __init__(self, c_in, c_out, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = ShortcutA(c_in, c_out, stride) if shortcut else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth, shortcut=True, in_channels=1, num_classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0, "CIFAR depth must be 6n+2"
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, c_in = [], 16
        for stage in range(3):
            width = 16 << stage
            blocks = []
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlockA(c_in, width, stride, shortcut))
                c_in = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def create(name):
    if name in IMAGENET:
        return imagenet_resnet(name)
    for prefix, shortcut in (("resnet", True), ("plain", False)):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return CifarResNet(int(name[len(prefix):]), shortcut=shortcut)
    raise SystemExit(f"pytorch_reference: unknown model '{name}'")


# ------------------------------------------------------------------ FLOPs (same count as resnet_shapes.h)
def step_flops_per_image(model, res, device):
    """Conv + linear FLOPs of one training step per image: 3x forward (fwd, bwd-data, bwd-weight), minus the stem
    conv's backward-data (its input needs no gradient). Counted with forward hooks on one image."""
    fwd, first = [0.0], [None]

    def conv_hook(mod, inp, out):
        f = 2.0 * out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        fwd[0] += 3 * f
        if first[0] is None:
            first[0] = f

    def fc_hook(mod, inp, out):
        fwd[0] += 3 * 2.0 * out.numel() * mod.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(fc_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, res, res, device=device))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return fwd[0] - (first[0] or 0.0)


# ------------------------------------------------------------------ memory
def _status_mb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


# ------------------------------------------------------------------ one configuration
def quantile(v, q):
    v = sorted(v)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def run(args, device, name, res, batch, math):
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
        torch.backends.cudnn.allow_tf32 = math == "tf32"
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = create(name).to(device)
    model.train()
    channels_last = math in ("amp_cl", "bf16_cl", "bf16_cl_compile")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    gflop_img = step_flops_per_image(model, res, device) / 1e9
    autocast_bf16 = math.startswith("bf16")
    forward = torch.compile(model) if math == "bf16_cl_compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda") if math == "amp_cl" else None

    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, res, res, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.arange(batch) % 10).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                loss = F.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        elif autocast_bf16:
            # bf16 keeps float32's exponent range: no loss scaling (docs/training.md, "Mixed precision").
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(forward(x), y)
            loss.backward()
            opt.step()
        else:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

    ms = []
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(args.warmup):
            step()
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(args.steps)]
        for a, b in ev:
            a.record()
            step()
            b.record()
        torch.cuda.synchronize()
        ms = [a.elapsed_time(b) for a, b in ev]
        peak_mb = torch.cuda.max_memory_allocated() / 1048576.0
    else:
        _reset_hwm()
        for _ in range(args.warmup):
            step()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            step()
            ms.append((time.perf_counter() - t0) * 1e3)
        peak_mb = _status_mb("VmHWM") - BASE_RSS_MB

    if args.profile:
        # Per-op self time over a few steps (torch.profiler), to set beside bench_kernels' per-op estimate.
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=acts) as prof:
            for _ in range(args.profile):
                step()
            if cuda:
                torch.cuda.synchronize()
        # torch >= 2.4 names the device column self_device_time_total; 1.13 (Debian) self_cuda_time_total.
        rows0 = prof.key_averages()
        key = "self_cpu_time_total"
        if cuda:
            key = "self_device_time_total" if rows0 and hasattr(rows0[0], "self_device_time_total") else \
                "self_cuda_time_total"
        print(f"# torch.profiler: {name} {res}x{res} batch {batch} {math}, {args.profile} steps, self time per step",
              flush=True)
        rows = sorted(rows0, key=lambda e: -getattr(e, key))
        total = sum(getattr(e, key) for e in rows)
        for e in rows[:25]:
            t = getattr(e, key) / args.profile / 1e3
            print(f"#   {e.key[:48]:48s} {t:9.2f} ms  {100 * getattr(e, key) / total:5.1f}%  calls/step "
                  f"{e.count // args.profile}", flush=True)

    med = statistics.median(ms)
    img_s = batch / (med / 1e3)
    gflops = gflop_img * img_s
    peak = args.peak_gflops
    if peak is None:
        peak = (67000.0 if math == "fp32" else 495000.0 if math == "tf32" else 989000.0) if cuda else 0.0
    return {
        "impl": "pytorch",
        "device": device.type,
        "model": name,
        "res": res,
        "batch": batch,
        "math": math,
        "engine": "torch",
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "step_ms": med,
        "step_ms_min": min(ms),
        "step_ms_max": max(ms),
        "step_ms_q1": quantile(ms, 0.25),
        "step_ms_q3": quantile(ms, 0.75),
        "img_per_s": img_s,
        "gflop_per_img": gflop_img,
        "gflops": gflops,
        "pct_peak": 100.0 * gflops / peak if peak > 0 else 0.0,
        "peak_mem_mb": peak_mb,
    }


# The same columns, headers and number formats as bench_models' table.
COLUMNS = [
    ("model", "model", None),
    ("res", "res", None),
    ("batch", "batch", None),
    ("math", "math", None),
    ("engine", "engine", None),
    ("threads", "thr", None),
    ("step_ms", "step ms (med)", 1),
    ("step_ms_min", "min", 1),
    ("step_ms_max", "max", 1),
    ("img_per_s", "img/s", 1),
    ("gflop_per_img", "GFLOP/img", 3),
    ("gflops", "GFLOP/s", 1),
    ("pct_peak", "%peak", 1),
    ("peak_mem_mb", "peak MB", 0),
]


def print_table(rows):
    cells = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        cells.append([str(r[k]) if p is None else f"{r[k]:.{p}f}" for k, _, p in COLUMNS])
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    cells.insert(1, ["-" * w for w in widths])
    for c in cells:
        print("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c))))


def int_list(s):
    return [int(v) for v in s.split(",") if v]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", default=None, help="comma list (default CPU resnet18; CUDA as bench_models)")
    p.add_argument("--batch", default=None, help="comma list (default CPU 16, CUDA 128)")
    p.add_argument("--res", default=None, help="comma list (default CPU 28, CUDA 96)")
    p.add_argument("--math", default=None,
                   help="comma list of fp32,tf32,amp_cl,bf16,bf16_cl,bf16_cl_compile (default CPU fp32; CUDA "
                        "fp32,tf32,amp_cl,bf16,bf16_cl)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default CPU 2, CUDA 5)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default CPU 5, CUDA 20)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: all cores)")
    p.add_argument("--peak-gflops", type=float, default=None, help="device peak for the %%peak column")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="also print torch.profiler self time per op over STEPS extra steps")
    args = p.parse_args()

    global BASE_RSS_MB
    BASE_RSS_MB = _status_mb("VmRSS")
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("pytorch_reference: --device cuda asked for, but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    models = (args.models or ("resnet18,resnet34,resnet50,resnet101,resnet152,resnet20,resnet56,resnet110"
                              if cuda else "resnet18")).split(",")
    batches = int_list(args.batch or ("128" if cuda else "16"))
    resolutions = int_list(args.res or ("96" if cuda else "28"))
    maths = (args.math or ("fp32,tf32,amp_cl,bf16,bf16_cl" if cuda else "fp32")).split(",")
    known = {"fp32", "tf32", "amp_cl", "bf16", "bf16_cl", "bf16_cl_compile"}
    if not set(maths) <= known:
        raise SystemExit(f"pytorch_reference: --math {','.join(maths)}: choose from {','.join(sorted(known))}")
    if not cuda and not set(maths) <= {"fp32", "bf16"}:
        raise SystemExit("pytorch_reference: on CPU only --math fp32,bf16 are measured")
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    args.steps = args.steps if args.steps is not None else (20 if cuda else 5)

    devname = torch.cuda.get_device_name() if cuda else platform.processor() or "cpu"
    if not cuda:
        try:
            with open("/proc/cpuinfo") as f:
                devname = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
    load = os.getloadavg()[0]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"# pytorch {torch.__version__} on {args.device}: {devname}, {torch.get_num_threads()} threads, "
          f"load average {load:.2f}, {now}", flush=True)
    print("# " + ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in
                           ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_NUM_THREADS")), flush=True)
    print(f"# warm-up {args.warmup} steps, timed {args.steps} steps; peak MB = "
          + ("torch.cuda.max_memory_allocated" if cuda else "VmHWM minus RSS at start-up"), flush=True)
    rows = []
    for name in models:
        for res in resolutions:
            for batch in batches:
                for math in maths:
                    try:
                        r = run(args, device, name, res, batch, math)
                    except Exception as e:  # torch.compile needs a working toolchain (Triton, a C++ compiler)
                        if math != "bf16_cl_compile":
                            raise
                        print(f"# {name} {res}x{res} batch {batch}: bf16_cl_compile did not run: "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
                        continue
                    if args.json:
                        print(json.dumps(r), flush=True)
                    rows.append(r)
    if not args.json:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
