#!/usr/bin/env python3
"""Ours against PyTorch, same machine, same command: for each model/resolution/batch, runs bench_models and then
pytorch_reference.py back to back (one process each, so memory figures do not mix), and prints the ratio
PyTorch step time / our step time per math mode (> 1 = we are faster).

CPU (same thread count on both sides; Debian's python3-torch):
  python3 benchmarks/compare.py --build build-bench --device cpu --models resnet18 --res 28 --batch 128 --threads 2
CUDA (our native, cuDNN and fastest engines in fp32, tf32 and bf16 against PyTorch fp32 / tf32 / autocast bf16;
our bf16 also against PyTorch's bf16 + channels_last, the issue's target, and its torch.compile with --compile;
PyTorch's fp16 AMP + channels_last is printed as context):
  python3 benchmarks/compare.py --build build --device cuda --models resnet18,resnet50 --res 96 --batch 128
--precision LIST (fp32,tf32,bf16) limits the math modes of both sides (default CPU fp32, CUDA all three).
--layout LIST (nchw,nhwc) chooses our activation layouts (bench_models --layout; default CPU nchw, CUDA both):
each of our rows is paired with PyTorch's rows of the same math, channels_last or not.

--engines LIST (native,cudnn,fastest) limits our CUDA conv engines (bench_models --engines; default all).
--save FILE writes every raw JSON record (both sides) to FILE as JSON lines, each as soon as its program prints
it, so a run stopped by a time limit keeps what it measured. A program that fails keeps the records it printed,
the other side still runs, and compare exits 1 after the table.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_json(cmd, save=None):
    """Runs cmd and reads its stdout as it comes: JSON records (each written to save at once, so a time limit that
    kills this script keeps what was measured) and '#' notes; stderr passes through. A failing command keeps the
    records it printed; its exit code is returned so that the comparison goes on and reports the failure."""
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    recs, notes = [], []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            line = line.strip()
            try:
                rec = json.loads(line) if line.startswith("{") else None
            except ValueError:  # a line cut off by a killed program
                rec = None
            if rec is not None:
                recs.append(rec)
                if save:
                    save.write(line + "\n")
                    save.flush()
            elif line.startswith("#"):
                notes.append(line)
            elif line:
                print(line, file=sys.stderr, flush=True)
        rc = p.wait()
    if rc != 0:
        print(f"compare: exit code {rc} from {' '.join(cmd)}; kept its {len(recs)} records", file=sys.stderr, flush=True)
    return recs, notes, rc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory holding bench_models (default: build)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", default="resnet18")
    ap.add_argument("--res", default=None, help="comma list (default CPU 28, CUDA 96)")
    ap.add_argument("--batch", default=None, help="comma list (default CPU 16, CUDA 128)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads, both sides")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--python", default=None, help="interpreter with torch (default CPU /usr/bin/python3, else python3)")
    ap.add_argument("--save", default=None, help="write all raw JSON records here")
    ap.add_argument("--precision", default=None, help="comma list of fp32,tf32,bf16 (default CPU fp32, CUDA all)")
    ap.add_argument("--layout", default=None, help="comma list of nchw,nhwc for ours (default CPU nchw, CUDA both)")
    ap.add_argument("--compile", action="store_true", help="CUDA: also PyTorch bf16_cl under torch.compile")
    ap.add_argument("--engines", default=None, help="CUDA: comma list of native,cudnn,fastest for ours (default all)")
    args = ap.parse_args()

    cuda = args.device == "cuda"
    exe = os.path.join(args.build if os.path.isabs(args.build) else os.path.join(ROOT, args.build), "bench_models")
    if not os.path.exists(exe):
        raise SystemExit(f"compare: {exe} not found; build it first: ninja -C {args.build} bench_models")
    py = args.python or ("/usr/bin/python3" if not cuda and os.path.exists("/usr/bin/python3") else "python3")
    res_list = (args.res or ("96" if cuda else "28")).split(",")
    batch_list = (args.batch or ("128" if cuda else "16")).split(",")
    common = ["--device", args.device, "--threads", str(args.threads), "--json"]
    maths = (args.precision or ("fp32,tf32,bf16" if cuda else "fp32")).split(",")
    # PyTorch's modes for ours: the same math; for bf16 also channels_last (+ compile), and fp16 AMP as context.
    torch_maths = [m for m in maths]
    if "bf16" in maths and cuda:
        torch_maths += ["bf16_cl"] + (["bf16_cl_compile"] if args.compile else []) + ["amp_cl"]
    ours_args = ["--precision", ",".join(maths), "--layout", args.layout or ("nchw,nhwc" if cuda else "nchw")]
    if args.engines:
        ours_args += ["--engines", args.engines]
    theirs_args = ["--math", ",".join(torch_maths)]
    if args.warmup is not None:
        common += ["--warmup", str(args.warmup)]
    if args.steps is not None:
        common += ["--steps", str(args.steps)]

    rows, machine, failed = [], [], []
    save = open(args.save, "w") if args.save else None
    for model in args.models.split(","):
        for res in res_list:
            for batch in batch_list:
                shape = ["--models", model, "--res", res, "--batch", batch]
                ours, n1, rc1 = run_json([exe] + shape + common + ours_args, save)
                theirs, n2, rc2 = run_json([py, os.path.join(HERE, "pytorch_reference.py")] + shape + common +
                                           theirs_args, save)
                failed += [cmd for cmd, rc in (("bench_models", rc1), ("pytorch_reference.py", rc2)) if rc != 0]
                for n in n1 + n2:
                    print(n)
                # bench_models' CPU and BLAS lines (kernels::cpu::cpu_description, blas_description), repeated under the table.
                machine += [n for n in n1 if (n.startswith("# ours") or n.startswith("# BLAS")) and n not in machine]
                by_math = {t["math"]: t for t in theirs}
                for o in ours:
                    pairs = [o["math"]] + (["bf16_cl", "bf16_cl_compile"] if o["math"] == "bf16" else [])
                    for m in pairs:
                        t = by_math.get(m)
                        if t or m == o["math"]:
                            rows.append((o, t, t["step_ms"] / o["step_ms"] if t else None))
                if "amp_cl" in by_math:
                    rows.append((None, by_math["amp_cl"], None))

    head = ["model", "res", "batch", "math", "torch math", "ours engine", "ours layout", "ours ms", "torch ms", "ours img/s", "torch img/s",
            "torch/ours", "ours MB", "torch MB"]
    cells = [head]
    for o, t, ratio in rows:
        r = o or t
        cells.append([
            r["model"], str(r["res"]), str(r["batch"]), o["math"] if o else "-", t["math"] if t else "-",
            o["engine"] if o else "-", o.get("layout", "nchw") if o else "-",
            f"{o['step_ms']:.1f}" if o else "-", f"{t['step_ms']:.1f}" if t else "-",
            f"{o['img_per_s']:.1f}" if o else "-", f"{t['img_per_s']:.1f}" if t else "-",
            f"{ratio:.2f}x" if ratio else "-", f"{o['peak_mem_mb']:.0f}" if o else "-",
            f"{t['peak_mem_mb']:.0f}" if t else "-"
        ])
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    cells.insert(1, ["-" * w for w in widths])
    print()
    for c in cells:
        print("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c))))
    print("\ntorch/ours = PyTorch step time / our step time (> 1: we are faster)")
    for n in machine:
        print(n)
    if save:
        save.close()
    if failed:
        print(f"compare: {', '.join(failed)} failed (see above); the table holds what they measured", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
