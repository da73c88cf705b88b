"""Collapse metrics at vocabulary scale: N = 2^20 token features streamed in batches,
d = 1,024, C = 32,768 classes with Zipf frequencies (some classes absent), and at
C = 4,096 side by side with a PyTorch reference written the way the tiled peer code
(rhubarbwu/neural-collapse) does it.

ncjax: one pass (``ClassStats.update`` per batch), then
``collapse_metrics_from_stats(..., joint_entropy=False)`` (every metric but NC4 and the
joint entropy, which is an O(C^3) eigenproblem at any route) and NC5 against an OOD
batch. NC4 needs the dataset's means, so it is a second pass; it is timed on N = 2^16.
The reference: pass 1 class means (index_add_), pass 2 within-class covariance and
per-class variances, then NC1 by torch.linalg.pinv of d x d, and CDNV, NC2 angles and
GNC2 by Python loops over (t, t) tiles of class pairs, allocating the C x C grid.

Both read the same batches, made on device by one jitted generator (its time is in both).

``--pairs``: the pairwise metrics alone as C grows (docs/scale.md), the class axis split
over P devices (``--devices P`` fakes P CPU devices): per-device XLA memory of the
compiled pair passes (arguments + temporaries; compiled only, so any C) and, for C up to
``--time_up_to``, their wall time. The pair passes are timed through
``nc2(stats, head=W)``: the means' pass (CDNV, GNC2 and the NC2 angles come from it) and
the head rows' pass, what ``collapse_metrics_from_stats`` spends on pairs.

  pip install torch==2.13.0   # benchmark only
  python -m benchmarks.many_classes [--classes 32768] [--samples 1048576]
  python -m benchmarks.many_classes --pairs --devices 8 [--precision BF16_BF16_F32_X3]
"""

import argparse
import functools
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

import ncjax
from benchmarks.timing import table

D, BATCH, ZIPF, TILE_TORCH = 1024, 8192, 1.1, 128


def problem(num_classes, seed=0):
  """Class means (C, D), head (C, D), Zipf CDF (C,) and an OOD batch (BATCH, D)."""
  k = jax.random.split(jax.random.key(seed), 3)
  means = jax.random.normal(k[0], (num_classes, D))
  head = means + 0.5 * jax.random.normal(k[1], (num_classes, D))
  p = 1.0 / np.arange(1, num_classes + 1) ** ZIPF
  cdf = jnp.asarray(np.cumsum(p / p.sum()), jnp.float32)
  ood = 0.3 * means[0] + jax.random.normal(k[2], (BATCH, D)) + 3.0
  return means, head, cdf, ood


@jax.jit
def make_batch(means, cdf, b):
  """Batch b: Zipf labels (inverse CDF) and features mu_y + N(0, I) + 3 (an offset)."""
  ku, kn = jax.random.split(jax.random.fold_in(jax.random.key(1), b))
  y = jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(ku, (BATCH,))), len(cdf) - 1)
  return means[y] + jax.random.normal(kn, (BATCH, D)) + 3.0, y.astype(jnp.int32)


def xla_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  return m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes


def ncjax_run(num_classes, samples, means, head, cdf, ood):
  """Streamed statistics and every metric but NC4: (metrics, seconds, peak XLA bytes)."""
  update = jax.jit(ncjax.ClassStats.update)
  metrics = jax.jit(lambda s, w, o: ncjax.collapse_metrics_from_stats(
      s, head=w, joint_entropy=False) | {"nc5": ncjax.nc5(s, o)})
  stats = ncjax.ClassStats.empty(num_classes=num_classes, dim=D)
  h, y = make_batch(means, cdf, 0)
  update, metrics = update.lower(stats, h, y).compile(), metrics.lower(stats, head, ood).compile()
  peak = max(xla_bytes(update), xla_bytes(metrics))  # compiled before the clock starts
  start = time.perf_counter()
  for b in range(samples // BATCH):
    stats = update(stats, *make_batch(means, cdf, b))
  jax.block_until_ready(stats)
  streamed = time.perf_counter() - start
  out = jax.device_get(metrics(stats, head, ood))
  return stats, out, streamed, time.perf_counter() - start - streamed, peak


def nc4_run(stats, means, head, cdf, samples):
  nc4 = jax.jit(lambda s, h, w: ncjax.nc4(s, h, head=w))  # stats and head as arguments, not constants to fold
  jax.block_until_ready(nc4(stats, make_batch(means, cdf, 0)[0], head))
  start = time.perf_counter()
  values = jax.block_until_ready(
      [nc4(stats, make_batch(means, cdf, b)[0], head) for b in range(samples // BATCH)])
  seconds = time.perf_counter() - start
  flops = 2 * 2 * samples * stats.num_classes * D  # W h and the distances to the means
  return float(np.mean(values)), seconds, flops / seconds / 1e9


def pair_inputs(num_classes, mesh):
  """ClassStats of C classes in D dims (every class present, unit spread), made directly,
  and a head (C, D): their class axis split over ``mesh``."""
  k = jax.random.split(jax.random.key(0), 2)
  c = num_classes
  means = jax.random.normal(k[0], (c, D))
  stats = ncjax.ClassStats(counts=jnp.full((c,), 8.0), shift=jnp.zeros(D), scale=jnp.ones(()),
                           scaled_means=means, scaled_within=8.0 * c * jnp.eye(D),
                           scaled_spread=jnp.full((c,), 8.0 * D))
  head = means + 0.5 * jax.random.normal(k[1], (c, D))
  return ncjax.sharding.shard_classes(mesh, stats), jax.device_put(
      head, ncjax.sharding.row_sharding(mesh))


def pairs_run(num_classes, devices, tile, precision, timed):
  """The two pair passes on C classes over ``devices`` devices: (per-device XLA bytes,
  seconds or None)."""
  mesh = ncjax.sharding.sample_mesh(jax.devices()[:devices])
  fn = jax.jit(lambda s, w: ncjax.nc2(s, head=w, tile_size=tile, mesh=mesh,
                                      precision=precision))
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                          jax.eval_shape(lambda: pair_inputs(num_classes, mesh)))
  compiled = fn.lower(*abstract).compile()
  if not timed:
    return xla_bytes(compiled), None
  inputs = pair_inputs(num_classes, mesh)
  jax.block_until_ready(compiled(*inputs))
  start = time.perf_counter()
  jax.block_until_ready(compiled(*inputs))
  return xla_bytes(compiled), time.perf_counter() - start


def pairs_table(args):
  rows = []
  for c in args.pair_classes:
    for p in sorted({1, args.devices}):
      memory, seconds = pairs_run(c, p, args.tile, args.precision, c <= args.time_up_to)
      local = c // p
      rows.append([f"{c:,}", p, f"{local:,}", f"{memory / 2**20:,.0f}",
                   f"{memory / (4 * local * D):.1f}", "-" if seconds is None else f"{seconds:.1f}"])
  print(f"Pair passes (means + head rows), d = {D}, tile_size = {args.tile}, "
        f"precision {args.precision}, {jax.default_backend()} ({jax.device_count()} devices)")
  print(table(["C", "devices P", "classes per device L", "XLA MiB per device",
               "in (L, d) float32 blocks", "wall s"], rows))


def torch_tiling(torch, data, kernel, tile):
  """The peer code's tiling: the full (C, C) grid, filled tile pair by tile pair."""
  c = len(data)
  grid = torch.zeros(c, c)
  for i in range(0, c, tile):
    for j in range(0, c, tile):
      grid[i:i + tile, j:j + tile] = kernel(data[i:i + tile], data[j:j + tile])
  return grid


def torch_reference(num_classes, samples, means, head, cdf, ood):
  import torch

  batches = lambda: (tuple(torch.from_numpy(np.array(a)) for a in make_batch(means, cdf, b))
                     for b in range(samples // BATCH))
  c = num_classes
  counts, sums = torch.zeros(c), torch.zeros(c, D)
  for h, y in batches():  # pass 1: means
    y = y.long()
    sums.index_add_(0, y, h)
    counts += torch.bincount(y, minlength=c)
  present = counts > 0
  mu = sums / counts.clamp(min=1)[:, None]
  mu_g = sums.sum(0) / counts.sum()
  sw, var = torch.zeros(D, D), torch.zeros(c)
  for h, y in batches():  # pass 2: covariance and per-class variances
    y = y.long()
    centred = h - mu[y]
    sw += centred.T @ centred
    var.index_add_(0, y, (centred**2).sum(1))
  sw /= counts.sum()
  var = var[present] / counts[present]
  m = (mu - mu_g)[present]
  w = torch.from_numpy(np.asarray(head))[present]
  k = len(m)
  out = {"nc1": torch.trace(sw @ torch.linalg.pinv(m.T @ m / k, hermitian=True)) / k}
  off = ~torch.eye(k, dtype=bool)
  bundled = torch.cat([m, var[:, None]], 1)

  def cdnv_kernel(a, b):
    diff = a[:, None, :-1] - b[None, :, :-1]
    return (a[:, None, -1] + b[None, :, -1]) / 2 / (diff**2).sum(-1)

  out["cdnv"] = torch_tiling(torch, bundled, cdnv_kernel, TILE_TORCH)[off].mean()
  u = m / m.norm(dim=1, keepdim=True)
  log_kernel = lambda a, b: -torch.log((a[:, None] - b[None]).norm(dim=-1))
  out["gnc2"] = torch_tiling(torch, u, log_kernel, TILE_TORCH)[off].mean()
  for name, x in (("means", u), ("head", w / w.norm(dim=1, keepdim=True))):
    cos = torch_tiling(torch, x, lambda a, b: a @ b.T, TILE_TORCH)[off]
    out[f"equiangular_{name}"] = cos.std(unbiased=False)
    out[f"maxangle_{name}"] = (cos + 1 / (k - 1)).abs().mean()
  out["unc3"] = torch.nn.functional.cosine_similarity(w, m).std(unbiased=False)
  g = torch.from_numpy(np.asarray(ood)).mean(0) - mu_g
  out["nc5"] = torch.nn.functional.cosine_similarity(m, g[None]).abs().mean()
  return {k: float(v) for k, v in out.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--classes", type=int, default=32768)
  parser.add_argument("--samples", type=int, default=2**20)
  parser.add_argument("--compare_classes", type=int, default=4096)
  parser.add_argument("--nc4_samples", type=int, default=2**16)
  parser.add_argument("--pairs", action="store_true", help="the pair passes as C grows")
  parser.add_argument("--pair_classes", type=int, nargs="+",
                      default=[2048, 4096, 8192, 16384, 32768, 65536, 262144])
  parser.add_argument("--devices", type=int, default=1, help="fake CPU devices (--pairs)")
  parser.add_argument("--tile", type=int, default=1024)
  parser.add_argument("--precision", default="highest")
  parser.add_argument("--time_up_to", type=int, default=16384)
  args = parser.parse_args()
  if args.pairs:
    jax.config.update("jax_num_cpu_devices", args.devices)
    pairs_table(args)
    return

  problem_big = problem(args.classes)
  stats, out, streamed, metrics_s, peak = ncjax_run(args.classes, args.samples, *problem_big)
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
  absent = int(np.sum(np.asarray(stats.counts) == 0))
  nc4, nc4_s, gflops = nc4_run(stats, problem_big[0], problem_big[1], problem_big[2],
                               args.nc4_samples)
  print(f"N = {args.samples:,} features, d = {D}, C = {args.classes:,} (Zipf {ZIPF}; "
        f"{absent:,} classes absent), batches of {BATCH}, float32, 2 CPU cores")
  print(table(["stream ClassStats s", "metrics s", "total s", "peak XLA GiB",
               "process peak RSS GiB", f"NC4 on N = {args.nc4_samples:,} s", "NC4 GFLOP/s"],
              [[f"{streamed:.1f}", f"{metrics_s:.1f}", f"{streamed + metrics_s:.1f}",
                f"{peak / 2**30:.2f}", f"{rss:.2f}", f"{nc4_s:.1f}", f"{gflops:.0f}"]]))
  print({k: round(float(v), 5) for k, v in out.items()} | {"nc4": round(nc4, 5)})

  import torch
  torch.set_num_threads(2)
  small = problem(args.compare_classes)
  _, ours, streamed, metrics_s, _ = ncjax_run(args.compare_classes, args.samples, *small)
  start = time.perf_counter()
  theirs = torch_reference(args.compare_classes, args.samples, *small)
  t_ref = time.perf_counter() - start
  gap = max(abs(theirs[k] - float(ours[k])) / max(abs(theirs[k]), 1e-6) for k in theirs)
  generate = functools.partial(make_batch, small[0], small[2])
  start = time.perf_counter()
  jax.block_until_ready([generate(b) for b in range(args.samples // BATCH)])
  t_gen = time.perf_counter() - start
  print(f"\nC = {args.compare_classes:,}: ncjax vs the tiled torch {torch.__version__} "
        f"reference ({TILE_TORCH} x {TILE_TORCH} tiles); max relative gap {gap:.1e} over "
        f"{sorted(theirs)}; making the batches alone {t_gen:.1f} s (in both)")
  print(table(["ncjax s (1 pass + metrics)", "torch reference s (2 passes + tiles)",
               "reference / ncjax"],
              [[f"{streamed + metrics_s:.1f}", f"{t_ref:.1f}",
                f"{t_ref / (streamed + metrics_s):.2f}x"]]))


if __name__ == "__main__":
  main()
