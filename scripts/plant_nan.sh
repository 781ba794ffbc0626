#!/usr/bin/env bash
# Mutation check: "a NaN written by any CPU kernel into any output or gradient must fail the suite".
#
# For each output of each CPU kernel entry point in kernels/cpu/*.cpp, a copy of this tree gets one NaN planted
# into the middle element of that output (a scope guard inserted at the top of the function writes it on every
# return path), engine_tests is rebuilt (ccache) and run with -a (abort at the first failure), and the first
# failing test is recorded. A mutation that the whole suite survives is a hole in the tests. The checkout itself
# is never modified. Not run in CI: a few minutes after the copy's first build, which is a full one.
#
#   scripts/plant_nan.sh                 # every mutation; a markdown table on stdout and in $WORK/results.md
#   scripts/plant_nan.sh relu_fwd sgd_w  # only these (ids from the table below)
#   PLANT_NAN_TESTS='~[app]' scripts/plant_nan.sh  # only the test cases this Catch spec selects
#   PLANT_NAN_ALL=1 scripts/plant_nan.sh # no -a: every test case that fails (slow: the whole suite each time)
#   PLANT_NAN_DIR=/tmp/x scripts/plant_nan.sh   # where the copy and its build live (kept for fast reruns)
#
# Exit status: 0 when every mutation is caught, 1 when one is not, 2 when the setup (copy, build, the unmutated
# suite) fails.
set -euo pipefail

ROOT="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
WORK="${PLANT_NAN_DIR:-${TMPDIR:-/tmp}/plant_nan-$(id -u)}"
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
# Tracked and untracked-but-not-ignored files, modification times kept (tar restores them), so a rerun rebuilds
# only what changed.
(cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
# The kernels are what gets mutated: rebuild them whatever a previous, interrupted run left behind (ccache hits).
touch "$WORK"/src/kernels/cpu/*.cpp
export CCACHE_BASEDIR="$WORK"

exec python3 - "$WORK" "$@" <<'PY'
import os, re, subprocess, sys, time

work, only = sys.argv[1], set(sys.argv[2:])
src, build_dir = os.path.join(work, "src"), os.path.join(work, "build")

# id | file in kernels/cpu | function | C++ run at the function's exit: plant(ptr, size) writes NaN to ptr[size / 2],
# plant_at(ptr, i) to ptr[i] (both skip a null pointer, an empty output and an integer type).
TABLE = r"""
conv_fwd          | conv.cpp          | conv2d_forward              | plant(y, s.n * s.oc * s.oh * s.ow)
conv_bwd_data     | conv.cpp          | conv2d_backward             | plant(gx, s.n * s.c * s.h * s.w)
conv_bwd_filter   | conv.cpp          | conv2d_backward             | plant(gw, s.oc * s.ckk())
conv_bwd_bias     | conv.cpp          | conv2d_backward             | plant(gb, s.oc)
bn_train_y        | batch_norm.cpp    | batch_norm_forward_train    | if (!relu) plant(y, s.n * s.c * s.hw)
bn_train_y_relu   | batch_norm.cpp    | batch_norm_forward_train    | if (relu) plant(y, s.n * s.c * s.hw)
bn_train_mean     | batch_norm.cpp    | batch_norm_forward_train    | plant(save_mean, s.c)
bn_train_invstd   | batch_norm.cpp    | batch_norm_forward_train    | plant(save_invstd, s.c)
bn_running_mean   | batch_norm.cpp    | batch_norm_forward_train    | plant(running_mean, s.c)
bn_running_var    | batch_norm.cpp    | batch_norm_forward_train    | plant(running_var, s.c)
bn_eval_y         | batch_norm.cpp    | batch_norm_forward_eval     | if (!relu) plant(y, s.n * s.c * s.hw)
bn_eval_y_relu    | batch_norm.cpp    | batch_norm_forward_eval     | if (relu) plant(y, s.n * s.c * s.hw)
bn_bwd_gx         | batch_norm.cpp    | batch_norm_backward         | if (!relu) plant(gx, s.n * s.c * s.hw)
bn_bwd_gx_relu    | batch_norm.cpp    | batch_norm_backward         | if (relu) plant(gx, s.n * s.c * s.hw)
bn_bwd_dgamma     | batch_norm.cpp    | batch_norm_backward         | plant(dgamma, s.c)
bn_bwd_dbeta      | batch_norm.cpp    | batch_norm_backward         | plant(dbeta, s.c)
relu_fwd          | relu.cpp          | relu_forward                | plant(y, n)
relu_bwd          | relu.cpp          | relu_backward               | plant(gx, n)
maxpool_fwd       | pool.cpp          | max_pool2d_forward          | plant(y, s.planes * s.out_h * s.out_w)
maxpool_bwd       | pool.cpp          | max_pool2d_backward         | plant(gx, s.planes * s.h * s.w)
avgpool_fwd       | pool.cpp          | adaptive_avg_pool2d_forward | plant(y, s.planes * s.out_h * s.out_w)
avgpool_bwd       | pool.cpp          | adaptive_avg_pool2d_backward| plant(gx, s.planes * s.h * s.w)
gemm              | gemm.cpp          | gemm                        | if (m > 0 && n > 0) plant_at(c, (m / 2) * ldc + n / 2)
linear_bias_fwd   | linear.cpp        | add_row_bias                | plant(y, rows * cols)
linear_bias_bwd   | linear.cpp        | sum_rows                    | plant(out, cols)
ce_fwd_loss       | cross_entropy.cpp | cross_entropy_forward       | plant(loss, 1)
ce_fwd_grad       | cross_entropy.cpp | cross_entropy_forward       | plant(grad, s.n * s.c)
ce_bwd            | cross_entropy.cpp | cross_entropy_backward      | plant(gx, count)
fill              | elementwise.cpp   | fill                        | plant(y, n)
convert           | elementwise.cpp   | convert                     | plant(y, n)
add               | elementwise.cpp   | add                         | plant(y, n)
scale             | elementwise.cpp   | scale                       | plant(y, n)
sgd_w             | sgd.cpp           | sgd_update                  | if (count > 0) plant(static_cast<T*>(tensors[0].w), tensors[0].n)
sgd_buf           | sgd.cpp           | sgd_update                  | if (count > 0) plant(static_cast<T*>(tensors[0].buf), tensors[0].n)
shortcut_fwd      | shortcut.cpp      | shortcut_a_forward          | plant(y, p.n * p.c_out * p.h_out * p.w_out)
shortcut_bwd      | shortcut.cpp      | shortcut_a_backward         | plant(gx, p.n * p.c_in * p.h_in * p.w_in)
image_batch       | image_batch.cpp   | make_image_batch            | plant(out, n * p.out_h * p.out_w)
metrics_loss      | batch_metrics.cpp | accumulate_batch_metrics    | plant(acc, 1)
metrics_correct   | batch_metrics.cpp | accumulate_batch_metrics    | plant(acc + 1, 1)
metrics_class     | batch_metrics.cpp | accumulate_batch_metrics    | plant(acc + kernels::kMetricsHeader, classes)
"""
mutations = [tuple(f.strip() for f in line.split("|")) for line in TABLE.strip().splitlines()]
unknown = only - {m[0] for m in mutations}
if unknown:
    sys.exit("plant_nan: unknown mutation(s) " + ", ".join(sorted(unknown)))

PRELUDE = """
// ---- planted by scripts/plant_nan.sh ----
#include <cstdint>
#include <functional>
#include <limits>
namespace {
template <class P>
void plant_at(P* p, int64_t i) {
  if (p && std::numeric_limits<P>::has_quiet_NaN) p[i] = std::numeric_limits<P>::quiet_NaN();
}
template <class P>
void plant(P* p, int64_t size) {
  if (size > 0) plant_at(p, size / 2);
}
struct PlantAtExit {
  std::function<void()> f;
  ~PlantAtExit() { f(); }
};
}  // namespace
// ---- end planted ----
"""


def mutate(text, func, code):
    m = re.search(r"^\w[\w:<>*& ]*\b" + re.escape(func) + r"\(", text, re.M)
    if not m:
        raise RuntimeError("no definition of " + func)
    brace = text.index("{", m.end())
    guard = "\n  PlantAtExit planted_nan_{[&] { " + code + "; }};"
    last_include = [i.end() for i in re.finditer(r"^#include .*$", text, re.M)][-1]
    text = text[: brace + 1] + guard + text[brace + 1 :]
    return text[:last_include] + "\n" + PRELUDE + text[last_include:]


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def build():
    return run(["cmake", "--build", build_dir, "-j2", "--target", "engine_tests"])


def failures(xml):
    # The test cases (not those tagged [!shouldfail]) with a failed expression, exception or fatal signal, in
    # order, each with its first failing line.
    cases = list(re.finditer(r'<TestCase name="([^"]*)"([^>]*)>', xml))
    bad = re.compile(r'<Expression success="false"[^>]*filename="([^"]*)"[^>]*line="(\d+)"|'
                     r'<(?:Exception|FatalErrorCondition) filename="([^"]*)" line="(\d+)"')
    found = []
    for k, c in enumerate(cases):
        if "!shouldfail" in c.group(2):
            continue
        end = cases[k + 1].start() if k + 1 < len(cases) else len(xml)
        f = bad.search(xml, c.end(), end)
        if f:
            file = f.group(1) or f.group(3)
            line = f.group(2) or f.group(4)
            file = file[file.find("tests/"):] if "tests/" in file else file
            found.append("%s (%s:%s)" % (c.group(1).replace("&amp;", "&").replace("&quot;", '"'), file, line))
    return found


every = os.environ.get("PLANT_NAN_ALL", "") not in ("", "0")
spec = [os.environ["PLANT_NAN_TESTS"]] if os.environ.get("PLANT_NAN_TESTS") else []


def suite():
    abort = [] if every else ["-a"]
    p = run([os.path.join(build_dir, "engine_tests"), *abort, "-r", "xml", *spec], timeout=1800, cwd=build_dir)
    return p.returncode, p.stdout


t0 = time.time()
cfg = run(["cmake", "-S", src, "-B", build_dir, "-G", "Ninja", "-DENGINE_CUDA=OFF",
           "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", "-DCMAKE_BUILD_TYPE=Release"])
b = build() if cfg.returncode == 0 else cfg
if b.returncode != 0:
    print(b.stdout[-4000:])
    sys.exit(2)
rc, out = suite()
if rc != 0:
    print("plant_nan: the unmutated suite fails; fix that first:", failures(out) or out[-2000:])
    sys.exit(2)
print("plant_nan: unmutated suite passes (%s, tests: %s); %d mutations" % (work, " ".join(spec) or "all",
      len(only or mutations)), file=sys.stderr)

rows, holes = [], []
for mid, fname, func, code in mutations:
    if only and mid not in only:
        continue
    path = os.path.join(src, "kernels", "cpu", fname)
    original = open(path).read()
    try:
        open(path, "w").write(mutate(original, func, code))
        b = build()
        if b.returncode != 0:
            result, by = "BUILD FAILED", b.stdout[-1500:]
        else:
            rc, out = suite()
            failed = failures(out)
            if rc == 0:
                result, by = "NOT CAUGHT", "-"
            elif failed:
                result, by = "caught", failed[0] if not every else "%d: %s" % (len(failed), "; ".join(failed))
            else:
                result, by = "caught (exit %d)" % rc, out[-300:].replace("\n", " ")
    finally:
        open(path, "w").write(original)
    if result != "caught":
        holes.append(mid)
    row = "| %s | `%s` in kernels/cpu/%s | `%s` | %s | %s |" % (mid, func, fname, code, result, by)
    rows.append(row)
    print(row, file=sys.stderr, flush=True)

build()  # leave the copy's build unmutated
head = "failing test cases" if every else "first failing test"
table = ["| mutation | kernel | planted | result | %s |" % head, "| --- | --- | --- | --- | --- |"] + rows
summary = "%d of %d mutations caught in %.0f s" % (len(rows) - len(holes), len(rows), time.time() - t0)
if holes:
    summary += "; NOT caught: " + ", ".join(holes)
open(os.path.join(work, "results.md"), "w").write("\n".join(table) + "\n\n" + summary + "\n")
print("\n".join(table))
print()
print(summary)
sys.exit(1 if holes else 0)
PY
