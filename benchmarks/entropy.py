"""ncjax.matrix_entropy vs the dense n x n route (PyTorch, as the authors compute it) and
vs the floor (one bare jitted eigvalsh of the d x d covariance, matmul included); then
the eigensolver's standing where no route helps (d >= n: the n x n Gram either way):
ncjax's values-only path vs torch.linalg.eigvalsh vs jnp.linalg.eigvalsh on one matrix.

  pip install torch==2.13.0   # benchmark only, never an ncjax dependency
  python -m benchmarks.entropy
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import ncjax
from benchmarks.timing import best_of, optional_torch, table

torch = optional_torch()

D = 128


def torch_dense_entropy(z: torch.Tensor) -> torch.Tensor:
  """The authors' route: cosine Gram (n x n), trace-normalise, dense eigvalsh."""
  zn = torch.nn.functional.normalize(z, dim=1)
  k = zn @ zn.T
  w = torch.linalg.eigvalsh(k / torch.trace(k)).clamp_min(0)
  return -(torch.special.xlogy(w, w)).sum()


def torch_covariance_entropy(z: torch.Tensor) -> torch.Tensor:
  """The same entropy by the d x d route: eigvalsh of Zn^T Zn / n (same nonzero spectrum)."""
  zn = torch.nn.functional.normalize(z, dim=1)
  w = torch.linalg.eigvalsh(zn.T @ zn / len(z)).clamp_min(0)
  return -(torch.special.xlogy(w, w)).sum()


@jax.jit
def floor(z):
  return jnp.linalg.eigvalsh(z.T @ z)


def main():
  torch.set_num_threads(2)
  ours = jax.jit(ncjax.matrix_entropy)
  rows = []
  for n in (1024, 2048, 4096):
    z = np.random.default_rng(n).normal(size=(n, D)).astype(np.float32)
    zj, zt = jnp.asarray(z), torch.from_numpy(z)
    np.testing.assert_allclose(ours(zj), torch_dense_entropy(zt).item(), rtol=1e-4)
    t_ours = best_of(ours, zj, repeats=20)
    t_floor = best_of(floor, zj, repeats=20)
    t_dense = best_of(torch_dense_entropy, zt, repeats=3)
    rows.append([n, f"{t_ours * 1e3:.2f}", f"{t_floor * 1e3:.2f}", f"{t_dense * 1e3:.0f}",
                 f"{t_dense / t_ours:.0f}x", f"{t_ours / t_floor:.2f}x"])
  print(f"matrix_entropy, d={D}, float32, {jax.devices()[0].platform}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads")
  print(table(["n", "ncjax ms", "floor ms", "torch dense ms", "dense / ncjax",
               "ncjax / floor"], rows))
  rows = []
  values_only, jnp_eigvalsh = jax.jit(ncjax.spectral.psd_eigvalsh), jax.jit(jnp.linalg.eigvalsh)
  for n in (97, 512, 1024):
    f = np.random.default_rng(n).normal(size=(n, n)).astype(np.float32)
    k = f @ f.T / n
    kj, kt = jnp.asarray(k), torch.from_numpy(k)
    np.testing.assert_allclose(values_only(kj), torch.linalg.eigvalsh(kt).numpy(), atol=1e-3)
    times = [best_of(values_only, kj, repeats=20), best_of(torch.linalg.eigvalsh, kt, repeats=20),
             best_of(jnp_eigvalsh, kj, repeats=20)]
    rows.append([n, *(f"{t * 1e3:.2f}" for t in times), f"{times[1] / times[0]:.2f}x"])
  print("\ndense eigenvalues of one n x n PSD matrix (d >= n: what every route reduces to)")
  print(table(["n", "ncjax psd_eigvalsh ms", "torch.linalg.eigvalsh ms",
               "jnp.linalg.eigvalsh ms", "torch / ncjax"], rows))


if __name__ == "__main__":
  main()
