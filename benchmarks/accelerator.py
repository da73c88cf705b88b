"""One-shot benchmark on whatever device JAX sees, side by side with PyTorch on the same device.

Rows, each with the device, the dtype and the ratio reference / ncjax (> 1: ncjax faster):
- matrix entropy against PyTorch's d x d route (the covariance) and n x n route (the dense
  cosine Gram, as the authors compute it), from ``benchmarks.entropy``;
- NC1, VCI, CDNV, NC2, NC3, NC4 against the two-pass PyTorch reference of
  ``benchmarks.collapse`` (its sizes: N = 50,000, d = 512, C = 100);
- many classes (``benchmarks.many_classes``): streamed ClassStats and every metric but NC4
  and the joint entropy, time and peak XLA memory;
- a ResNet-18 (CIFAR stem) SGD step in float32 and bfloat16 against torchvision's in
  float32 and under ``torch.autocast`` bfloat16 (``benchmarks.train_step``);
- the README's job (``experiments/grokking.py``) as a subprocess: its wall time and the
  breakdown it writes to ``timing.json``.

Every section runs even if an earlier one failed (its row then says why); rows print as they
finish, the largest C last. JAX allocates device memory on demand here (no preallocation),
so that PyTorch and the job's process share the device. PyTorch is a benchmark-only
dependency: without it its rows say "torch not installed". ``--small`` runs the same code
at CPU sizes (small C, a short job) in <= 3 min on a quiet 2-core CPU.

  python -m benchmarks.accelerator [--small] [--json rows.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before JAX's backend starts

import jax  # noqa: E402
import numpy as np  # noqa: E402

import ncjax  # noqa: E402
from benchmarks import collapse, entropy, many_classes, train_step  # noqa: E402
from benchmarks.timing import best_of, optional_torch, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_JOB = ("--config.data.modulus=23", "--config.model.kwargs.embed_dim=16",
            "--config.model.kwargs.hidden_dim=32", "--config.steps=200",
            "--config.metrics_every=100", "--config.snapshots=2", "--config.checkpoint_every=200",
            "--config.sample_size=64")
SIZES = {
    "full": dict(entropy=(2**20, 1024), dense_n=16_384, classes=(32_768, 262_144),
                 class_samples=2**20, resnet=(512, 32), job=()),
    "small": dict(entropy=(4096, 128), dense_n=1024, classes=(128, 512), class_samples=2**14,
                  resnet=(4, 8), job=TINY_JOB),
}
HEADER = ["benchmark", "device", "dtype", "ncjax s", "reference", "reference s",
          "reference / ncjax", "peak memory", "note"]
NO_TORCH = "torch not installed"


class Bench:
  """Collects the rows; ``torch`` and ``torch_device`` are the PyTorch side (or None)."""

  def __init__(self):
    dev = jax.devices()[0]
    self.device = f"{dev.platform}: {dev.device_kind}"
    self.torch = optional_torch()
    gpu = self.torch is not None and dev.platform == "gpu" and self.torch.cuda.is_available()
    self.torch_device = "cuda" if gpu else "cpu"
    self.rows = []

  def row(self, what, dtype, ours=None, reference="", theirs=None, memory="", note=""):
    ratio = f"{theirs / ours:.2f}x" if ours and theirs else ""
    seconds = lambda t: f"{t:.4g}" if t is not None else ""
    self.rows.append([what, self.device, dtype, seconds(ours), reference, seconds(theirs),
                      ratio, memory, note])
    print("| " + " | ".join(self.rows[-1]) + " |", flush=True)

  def torch_seconds(self, fn, *args, repeats=3):
    """Best wall time of a PyTorch call on its device (synchronised)."""
    def synced(*a):
      out = fn(*a)
      if self.torch_device == "cuda":
        self.torch.cuda.synchronize()
      return out
    return best_of(synced, *args, repeats=repeats)

  def to_torch(self, x):
    return self.torch.from_numpy(np.array(x)).to(self.torch_device)


def relative_gap(a, b) -> str:
  return f"values agree to {abs(float(a) - float(b)) / max(abs(float(b)), 1e-12):.1e} rel."


def entropy_rows(bench, n, d, dense_n):
  z = jax.random.normal(jax.random.key(0), (n, d)) + 0.5
  ours = jax.jit(ncjax.matrix_entropy)
  t_ours = best_of(ours, z)
  what = f"matrix entropy n={n:,} d={d:,}"
  small = z[:dense_n]
  t_small = best_of(ours, small)
  if bench.torch is None:
    bench.row(what, "float32", t_ours, NO_TORCH)
    bench.row(f"matrix entropy n={dense_n:,} d={d:,}", "float32", t_small, NO_TORCH)
    return
  zt = bench.to_torch(z)
  bench.row(what, "float32", t_ours, "torch d x d route",
            bench.torch_seconds(entropy.torch_covariance_entropy, zt),
            note=relative_gap(ours(z), entropy.torch_covariance_entropy(zt).item()))
  st = zt[:dense_n]
  bench.row(f"matrix entropy n={dense_n:,} d={d:,}", "float32", t_small, "torch n x n route",
            bench.torch_seconds(entropy.torch_dense_entropy, st, repeats=1),
            note=relative_gap(ours(small), entropy.torch_dense_entropy(st).item()))


def collapse_rows(bench):
  h, y, w, b = collapse.make_data()
  args = [jax.numpy.asarray(a) for a in (h, y, w, b)]
  t_ours = best_of(collapse.ncjax_metrics, *args, repeats=3)
  what = f"NC1-4, VCI, CDNV N={collapse.N:,} d={collapse.D} C={collapse.C}"
  if bench.torch is None:
    bench.row(what, "float32", t_ours, NO_TORCH)
    return
  targs = [bench.to_torch(a) for a in (h, y.astype(np.int64), w, b)]
  with bench.torch.device(bench.torch_device):
    theirs = {k: float(v) for k, v in collapse.torch_reference(*targs).items()}
    t_ref = bench.torch_seconds(collapse.torch_reference, *targs)
  ours = {k: float(v) for k, v in collapse.ncjax_metrics(*args).items()}
  worst = max(abs(ours[k] - v) / max(abs(v), 1e-3) for k, v in theirs.items())
  bench.row(what, "float32", t_ours, "torch two-pass reference", t_ref,
            note=f"largest relative gap of a metric {worst:.1e}")


def many_class_rows(bench, classes, samples):
  for c in classes:
    problem = many_classes.problem(c)
    stats, _, streamed, metrics_s, peak = many_classes.ncjax_run(c, samples, *problem)
    absent = int(np.sum(np.asarray(stats.counts) == 0))
    bench.row(f"C={c:,} classes, N={samples:,} d={many_classes.D:,}", "float32",
              streamed + metrics_s, memory=f"{peak / 2**30:.2f} GiB (XLA)",
              note=f"stream {streamed:.3g} s, metrics {metrics_s:.3g} s; {absent:,} absent")


def resnet_rows(bench, batch, image):
  for dtype in ("float32", "bfloat16"):
    t_ours = train_step.vision_step_seconds("resnet18", batch, image, dtype)
    what = f"ResNet-18 SGD step, batch {batch}, {image}x{image}"
    note = f"ncjax {batch / t_ours:,.0f} examples/s"
    if bench.torch is None:
      bench.row(what, dtype, t_ours, NO_TORCH, note=note)
      continue
    try:
      import torchvision  # noqa: F401
    except Exception as e:  # noqa: BLE001 - a torchvision built for another torch fails so
      bench.row(what, dtype, t_ours, f"torchvision not importable ({type(e).__name__})",
                note=note)
      continue
    t_ref = train_step.torchvision_resnet18_step_seconds(bench.torch_device, batch, image,
                                                         autocast=dtype == "bfloat16")
    reference = "torchvision " + ("autocast bfloat16" if dtype == "bfloat16" else "float32")
    bench.row(what, dtype, t_ours, reference, t_ref, note=note)


def job_rows(bench, extra):
  if bench.torch_device == "cuda":
    bench.torch.cuda.empty_cache()  # leave the device to the job's process
  with tempfile.TemporaryDirectory() as workdir:
    cmd = [sys.executable, "-m", "ncjax", "train", "--config",
           os.path.join(ROOT, "experiments", "grokking.py"), "--workdir", workdir, *extra]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "timing.json")) as f:
      timing = json.load(f)
  what = "README job (experiments/grokking.py" + (", " + " ".join(extra) if extra else "") + ")"
  bench.row(what, "float32", wall, note=f"process wall time; the run's own total "
                                       f"{timing['total_s']:.3g} s")
  for name, p in timing["phases"].items():
    spent = p["first_s"] + p["rest_s"]
    bench.row(f"  README job: {name}", "float32", spent,
              note=f"{p['calls']} calls, the first {p['first_s']:.3g} s")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--small", action="store_true", help="CPU sizes, <= 3 minutes")
  parser.add_argument("--json", help="also write the rows to this JSON file")
  args = parser.parse_args(argv)
  size = SIZES["small" if args.small else "full"]
  bench = Bench()
  torch_note = (f"torch {bench.torch.__version__} on {bench.torch_device}"
                if bench.torch else NO_TORCH)
  print(f"jax {jax.__version__}, {bench.device}; {torch_note}", flush=True)
  print("| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER), flush=True)
  sections = [("matrix entropy", entropy_rows, (*size["entropy"], size["dense_n"])),
              ("collapse metrics", collapse_rows, ()),
              ("ResNet-18 step", resnet_rows, size["resnet"]),
              ("README job", job_rows, (size["job"],)),
              ("many classes", many_class_rows, (size["classes"], size["class_samples"]))]
  start = time.perf_counter()
  for name, section, section_args in sections:
    began = time.perf_counter()
    try:
      section(bench, *section_args)
    except Exception as e:  # noqa: BLE001 - one section's failure must not lose the others' rows
      bench.row(name, "", note=f"failed: {type(e).__name__}: {str(e)[:200]}")
    print(f"({name}: {time.perf_counter() - began:.0f} s)", flush=True)
  print(f"\n{time.perf_counter() - start:.0f} s in all\n\n" + table(HEADER, bench.rows))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"jax": jax.__version__, "torch": torch_note, "device": bench.device,
                 "small": args.small,
                 "rows": [dict(zip(HEADER, r, strict=True)) for r in bench.rows]},
                f, indent=1)


if __name__ == "__main__":
  main()
