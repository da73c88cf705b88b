"""Joint entropy H(G(Z1) o G(Z2)) at large n, d1 = d2 = 64: the exact chunked Kronecker
moment route (ncjax.joint_entropy picks it when d1 d2 < n) vs the dense n x n route.

Prints time, XLA temporary memory, and the error of the chunked route against the dense
route where that fits (float32 both; the dense one in float64 NumPy for the error).

  python -m benchmarks.scale [--sizes 10000,100000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import ncjax
from benchmarks.timing import table

D = 64


def features(n, seed):
  """Low-rank structured features plus noise: Z = G (n x 8) R (8 x 64) + 0.1 noise."""
  rng = np.random.default_rng(seed)
  g = rng.normal(size=(n, 8)).astype(np.float32)
  return g @ rng.normal(size=(8, D)).astype(np.float32) + 0.1 * rng.normal(
      size=(n, D)).astype(np.float32)


def dense_joint(z1, z2):
  """The n x n route in float64 NumPy (the reference)."""
  g = lambda z: (lambda zn: zn @ zn.T)(z / np.linalg.norm(z, axis=1, keepdims=True))
  k = g(np.float64(z1)) * g(np.float64(z2))
  lam = np.clip(np.linalg.eigvalsh(k / np.trace(k)), 0, None)
  lam = lam[lam > 0]
  return -np.sum(lam * np.log(lam))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="10000,100000")
  parser.add_argument("--dense_up_to", type=int, default=10000)
  args = parser.parse_args()
  joint = jax.jit(ncjax.joint_entropy)
  rows = []
  for n in map(int, args.sizes.split(",")):
    z1, z2 = jnp.asarray(features(n, 0)), jnp.asarray(features(n, 1))
    compiled = joint.lower(z1, z2).compile()
    temp = compiled.memory_analysis().temp_size_in_bytes
    start = time.perf_counter()
    value = float(compiled(z1, z2))
    elapsed = time.perf_counter() - start
    error = "-"
    if n <= args.dense_up_to:
      start = time.perf_counter()
      want = dense_joint(np.asarray(z1), np.asarray(z2))
      dense_s = time.perf_counter() - start
      error = f"{abs(value - want) / want:.1e} (dense f64 {dense_s:.0f} s)"
    rows.append([f"{n:,}", f"{elapsed:.1f}", f"{temp / 2**20:.0f}", f"{value:.4f}", error])
    print(rows[-1], flush=True)
  print(f"joint entropy, d1 = d2 = {D}, exact chunked moment route ({D * D} x {D * D})")
  print(table(["n", "seconds", "XLA temp MiB", "H12 nats", "rel. error vs dense"], rows))


if __name__ == "__main__":
  main()
