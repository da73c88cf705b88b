"""Joint entropy H(G(Z1) o G(Z2)) at large n, d1 = d2 = 64: the exact chunked Kronecker
moment route (``ncjax.joint_entropy``, method "kronecker", which "auto" takes here),
deflated SLQ (``ncjax.joint_entropy_slq``, with its standard error) and the dense n x n
route where it fits.

Prints, per n and route: wall time (one call after compiling), peak memory (XLA's
arguments + temporaries + output of the compiled call) and the relative error against
the dense float64 NumPy route when n <= --dense_up_to, else against the exact route
(float32; itself within 5e-6 of dense float64 at n = 1e4). Features are made on device:
Z = G (n x 8) R (8 x 64) + 0.1 noise (--kind structured) or Gaussian (--kind isotropic).

  python -m benchmarks.scale [--sizes 10000,100000,1000000] [--kind structured]
"""

import argparse
import functools
import time

import jax
import numpy as np

import ncjax
from benchmarks.timing import table

D = 64


def features(n, seed, kind):
  """(n, D) float32 features made on device."""
  g, r, noise = jax.random.split(jax.random.key(seed), 3)
  if kind == "isotropic":
    return jax.random.normal(noise, (n, D))
  return (jax.random.normal(g, (n, 8)) @ jax.random.normal(r, (8, D))
          + 0.1 * jax.random.normal(noise, (n, D)))


def dense_joint(z1, z2):
  """The n x n route in float64 NumPy (the reference)."""
  g = lambda z: (lambda zn: zn @ zn.T)(z / np.linalg.norm(z, axis=1, keepdims=True))
  k = g(np.float64(z1)) * g(np.float64(z2))
  lam = np.clip(np.linalg.eigvalsh(k / np.trace(k)), 0, None)
  lam = lam[lam > 0]
  return -np.sum(lam * np.log(lam))


def run(fn, *args):
  """(value, seconds, peak MiB) of one call of jit(fn) after compiling."""
  compiled = jax.jit(fn).lower(*args).compile()
  memory = compiled.memory_analysis()
  peak = (memory.argument_size_in_bytes + memory.temp_size_in_bytes
          + memory.output_size_in_bytes) / 2**20
  start = time.perf_counter()
  value = jax.block_until_ready(compiled(*args))
  return value, time.perf_counter() - start, peak


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="10000,100000,1000000")
  parser.add_argument("--dense_up_to", type=int, default=10000)
  parser.add_argument("--kind", choices=["structured", "isotropic"], default="structured")
  args = parser.parse_args()
  rows = []
  for n in map(int, args.sizes.split(",")):
    z1, z2 = features(n, 0, args.kind), features(n, 1, args.kind)
    exact, exact_s, exact_mib = run(
        functools.partial(ncjax.joint_entropy, method="kronecker"), z1, z2)
    (slq, stderr), slq_s, slq_mib = run(
        lambda a, b, k: ncjax.joint_entropy_slq(a, b, key=k), z1, z2, jax.random.key(0))
    reference, against = float(exact), "exact"
    if n <= args.dense_up_to:
      start = time.perf_counter()
      reference, against = dense_joint(np.asarray(z1), np.asarray(z2)), "dense f64"
      rows.append([f"{n:,}", "dense n x n (NumPy f64)", f"{time.perf_counter() - start:.1f}",
                   f"{n * n * 8 * 2 / 2**20:,.0f} (2 n x n)", f"{reference:.4f}", "-"])
    error = lambda v, ref=reference, against=against: f"{abs(float(v) - ref) / ref:.1e} vs {against}"
    rows.append([f"{n:,}", "exact chunked moment", f"{exact_s:.1f}", f"{exact_mib:,.0f}",
                 f"{float(exact):.4f}", error(exact) if against != "exact" else "-"])
    rows.append([f"{n:,}", "SLQ (joint_entropy_slq)", f"{slq_s:.1f}", f"{slq_mib:,.0f}",
                 f"{float(slq):.4f} +- {float(stderr):.4f}", error(slq)])
    print(rows[-2:], flush=True)
  print(f"joint entropy, d1 = d2 = {D}, {args.kind} features")
  print(table(["n", "route", "seconds", "peak MiB", "H12 nats", "rel. error"], rows))


if __name__ == "__main__":
  main()
