"""NC1 from the SVD of the class means vs the Gram route it replaced: time and accuracy.

Side by side in one run, on random means with C close to d (nearly dependent; unit
within-class noise, offset 3), from the same ClassStats:
- ncjax.nc1: SVD of the centred means (C x d), pseudo-inverse on the known rank;
- the floor of the old route: one eigh of the C x C Gram M M^T (what NC1 took before,
  with its cut-off C eps lambda_max), and its NC1 value;
- the float64 reference (NumPy pinv of Sigma_B) for the errors.

  python -m benchmarks.conditioning
"""

import jax
import jax.numpy as jnp
import numpy as np

import ncjax
from benchmarks.timing import best_of, table
from ncjax.kernels import matmul

SHAPES = ((256, 100, 16_384), (256, 250, 16_384), (512, 500, 32_768), (256, 1_000, 32_768))


def data(d, c, n, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  return (rng.normal(size=(c, d))[y] + rng.normal(size=(n, d)) + 3.0).astype(np.float32), y


@jax.jit
def gram_route(stats):
  """NC1 as before: eigh of M M^T (C <= d) or M^T M, cut-off C eps lambda_max."""
  m = stats.scaled_centred_means
  lam, u = jnp.linalg.eigh(matmul(m, m.T) if m.shape[0] <= m.shape[1] else matmul(m.T, m))
  keep = (lam > m.shape[0] * jnp.finfo(lam.dtype).eps * lam[-1]) & (
      jnp.arange(lam.shape[0]) >= lam.shape[0] - (stats.num_present - 1))
  inverse = jnp.where(keep, 1 / jnp.where(keep, lam, 1), 0)
  if m.shape[0] <= m.shape[1]:
    a = matmul(matmul(m, stats.scaled_sigma_w), m.T)
    return jnp.sum(jnp.einsum("ci,cd,di->i", u, a, u) * inverse**2)
  return jnp.sum(jnp.einsum("di,de,ei->i", u, stats.scaled_sigma_w, u) * inverse)


def reference(h, y, c):
  h = h.astype(np.float64)
  counts = np.bincount(y, minlength=c)
  means = np.stack([h[y == k].mean(0) for k in range(c)])
  m = means - h.mean(0)
  sigma_w = (h - means[y]).T @ (h - means[y]) / len(h)
  return np.trace(sigma_w @ np.linalg.pinv(m.T @ m / c, rcond=1e-9)) / c if counts.all() else None


def main():
  nc1 = jax.jit(ncjax.nc1)
  rows = []
  for d, c, n in SHAPES:
    h, y = data(d, c, n)
    stats = ncjax.class_stats(h, y, num_classes=c)
    want = reference(h, y, c)
    ours, floor = best_of(nc1, stats), best_of(gram_route, stats)
    eigh = best_of(jax.jit(lambda m: jnp.linalg.eigvalsh(matmul(m, m.T))),
                   stats.scaled_centred_means)
    err = lambda v, want=want: f"{abs(float(v) - want) / want:.1e}"
    rows.append([f"{d}, {c}", f"{ours * 1e3:.1f}", f"{floor * 1e3:.1f}", f"{ours / floor:.2f}",
                 f"{eigh * 1e3:.1f}", err(nc1(stats)), err(gram_route(stats))])
  print(table(["d, C", "ncjax nc1 ms", "Gram route ms", "ratio", "bare eigvalsh ms",
               "ncjax rel. error", "Gram route rel. error"], rows))


if __name__ == "__main__":
  main()
