"""Kernels on features: row normalisation, cosine Gram, Hadamard (Kronecker) features.

Matrix products here use full float32 precision ("highest"): on TPU the default
would round the operands to bfloat16, which visibly biases small eigenvalues.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ncjax import _validation as check

__all__ = ["normalize_rows", "cosine_gram", "hadamard_features"]

matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


TRIANGLE_BLOCK = 256  # columns per block of :func:`gram`


def gram(x: jax.Array, *, block: int = TRIANGLE_BLOCK) -> jax.Array:
  """x^T x from the upper triangle of its blocks only: about half the flops of the full
  product for d >> block, on every platform.

  The columns are cut into round(d / block) near-equal blocks; block row i is one product
  x_i^T [x_i ... x_last], the blocks below the diagonal are exact transposes of those
  above it, and the diagonal blocks are symmetrised: the result is exactly symmetric.

  Args:
    x: (..., n, d).
    block: target columns per block (static); d < 1.5 block is one full product.
  Returns:
    (..., d, d) symmetric.

  >>> import jax.numpy as jnp
  >>> x = jnp.arange(12.0).reshape(4, 3)
  >>> bool((gram(x, block=1) == x.T @ x).all())
  True
  """
  t = lambda a: jnp.swapaxes(a, -1, -2)
  d = x.shape[-1]
  count = max(1, round(d / block))
  edges = [round(i * d / count) for i in range(count + 1)]
  strips = [matmul(t(x[..., lo:hi]), x[..., lo:]) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
  rows = []
  for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
    diagonal = strips[i][..., :hi - lo]
    left = [t(strips[j][..., lo - edges[j]:hi - edges[j]]) for j in range(i)]
    rows.append(jnp.concatenate([*left, 0.5 * (diagonal + t(diagonal)),
                                 strips[i][..., hi - lo:]], axis=-1))
  return jnp.concatenate(rows, axis=-2)


def power_of_two(x: jax.Array) -> jax.Array:
  """The power of two 2^e with x < 2^e <= 2x for x > 0 (exact); 0 for x = 0. Dividing by
  it (and multiplying back) is exact: a scale that keeps squares in float range."""
  return jnp.where(x > 0, jnp.ldexp(jnp.ones_like(x), jnp.frexp(x)[1]), 0.0).astype(x.dtype)


def _max_abs(z: jax.Array) -> jax.Array:
  """(n, 1) largest |entry| of each row, as a constant for autodiff (the functions that
  divide by it are invariant to it); 1 for zero rows."""
  m = jax.lax.stop_gradient(jnp.max(jnp.abs(z), axis=-1, keepdims=True))
  return jnp.where(m > 0, m, 1.0)


def row_norms(z: jax.Array) -> jax.Array:
  """(n,) Euclidean norms of the rows, scaled first so that 1e30 or 1e-30 neither
  overflows nor underflows."""
  m = _max_abs(z)
  return m[:, 0] * jnp.linalg.norm(z / m, axis=-1)


def frobenius_norm(z: jax.Array) -> jax.Array:
  """Frobenius norm of a matrix, scaled first like :func:`row_norms`."""
  m = jax.lax.stop_gradient(jnp.max(jnp.abs(z)))
  m = jnp.where(m > 0, m, 1.0)
  return m * jnp.linalg.norm(z / m)


def unit_rows(z: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """:func:`normalize_rows` without validation, for inputs a caller has checked."""
  if mask is None:
    z = z / _max_abs(z)
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)
  z = jnp.where(mask[:, None], z, 1.0)
  z = z / _max_abs(z)
  norm = jnp.linalg.norm(z, axis=-1, keepdims=True)
  return jnp.where(mask[:, None], z / norm, 0.0)


def normalize_rows(z: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """L2-normalises the rows of z; masked-out rows become zero.

  Each row is divided by its largest |entry| first, so the result is the same for rows
  of size 1e30, 1 or 1e-30.

  Args:
    z: (n, d) real floating features, no NaN/Inf or all-zero rows where unmasked.
    mask: optional (n,) bool; False rows are set to 0 (with finite gradients).
  Returns:
    (n, d) rows of unit norm (zero where masked).

  >>> import jax.numpy as jnp
  >>> print(normalize_rows(jnp.array([[3.0, 4.0], [0.0, 0.0]]), mask=jnp.array([True, False])))
  [[0.6 0.8]
   [0.  0. ]]
  """
  z = check.features(z, "z", min_rows=0)
  checked_mask = check.as_mask(mask, z.shape[0])
  check.finite(z, "z", checked_mask)
  check.rows_nonzero(z, checked_mask, "z")
  return unit_rows(z, None if mask is None else checked_mask)


def cosine_gram(z: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """Cosine-similarity Gram matrix G = Zn Zn^T of the L2-normalised rows.

  Args:
    z: (n, d) real floating features (no all-zero unmasked rows).
    mask: optional (n,) bool; masked rows and columns are zero.
  Returns:
    (n, n) PSD with unit diagonal on unmasked rows.

  >>> import jax.numpy as jnp
  >>> print(cosine_gram(jnp.array([[3.0, 4.0], [1.0, 0.0]])))
  [[1.  0.6]
   [0.6 1. ]]
  """
  zn = normalize_rows(check.features(z, "z", min_rows=1), mask=mask)
  return matmul(zn, zn.T)


def hadamard_features(z1: jax.Array, z2: jax.Array) -> jax.Array:
  """Row-wise Kronecker (Khatri-Rao) product: F F^T = (Z1 Z1^T) o (Z2 Z2^T).

  Args:
    z1: (n, d1); z2: (n, d2).
  Returns:
    (n, d1 * d2) with row i = kron(z1[i], z2[i]).

  >>> import jax.numpy as jnp
  >>> hadamard_features(jnp.array([[1.0, 2.0]]), jnp.array([[3.0, 4.0]])).tolist()
  [[3.0, 4.0, 6.0, 8.0]]
  """
  z1, z2 = check.features(z1, "z1", min_rows=0), check.features(z2, "z2", min_rows=0)
  check.same_rows(z1=z1, z2=z2)
  check.finite(z1, "z1")
  check.finite(z2, "z2")
  f = khatri_rao(z1, z2)
  if check.is_concrete(f):  # the exact products, to see over- and underflow
    exact = np.abs(khatri_rao(check.host(z1).astype(np.float64), check.host(z2).astype(np.float64)))
    info = np.finfo(f.dtype)
    if np.any(exact > info.max) or np.any((exact > 0) & (exact < info.tiny)):
      raise ValueError(f"hadamard_features: products of z1 and z2 leave {f.dtype}'s range "
                       "(rescale the rows, e.g. normalize_rows first).")
  return f


def khatri_rao(z1, z2):
  """:func:`hadamard_features` without validation: (n, d1 * d2), row i kron(z1_i, z2_i), of
  JAX or NumPy arrays z1 (n, d1), z2 (n, d2)."""
  return (z1[:, :, None] * z2[:, None, :]).reshape(z1.shape[0], z1.shape[1] * z2.shape[1])


def _symmetric_kron_features(z: jax.Array) -> jax.Array:
  """Features whose Gram is (Z Z^T) o (Z Z^T), with d(d+1)/2 columns instead of d^2.

  Row i holds z_ia z_ib for a <= b, off-diagonal pairs scaled by sqrt(2).

  Args:
    z: (n, d).
  Returns:
    (n, d (d + 1) / 2).
  """
  a, b = np.triu_indices(z.shape[1])
  return z[:, a] * z[:, b] * np.where(a == b, 1.0, np.sqrt(2.0)).astype(z.dtype)


def hadamard_moment(z1: jax.Array, z2: jax.Array, chunk_size: int) -> jax.Array:
  """F^T F for the Kronecker features F of (z1, z2), accumulated over row chunks.

  F F^T = (Z1 Z1^T) o (Z2 Z2^T), so F^T F has its nonzero spectrum. When ``z2 is z1`` the
  symmetric features (d(d+1)/2 columns) are used. Memory O(chunk_size * m + m^2), m the
  number of feature columns, whatever n is; zero rows (masked) contribute nothing.

  Args:
    z1: (n, d1); z2: (n, d2); chunk_size: rows per chunk (n is zero-padded to a multiple).
  Returns:
    (m, m) PSD moment matrix, m = d1 * d2, or d1 (d1 + 1) / 2 when ``z2 is z1``.
  """
  features = _symmetric_kron_features if z2 is z1 else lambda z: khatri_rao(*z)
  pair = z1 if z2 is z1 else (z1, z2)
  n = z1.shape[0]
  pad = -n % chunk_size
  chunks = jax.tree.map(
      lambda z: jnp.pad(z, ((0, pad), (0, 0))).reshape(-1, chunk_size, z.shape[1]), pair)

  def add(moment, chunk):
    return moment + gram(features(chunk)), None

  first = features(jax.tree.map(lambda c: c[0], chunks))  # the carry starts from data, so
  rest = jax.tree.map(lambda c: c[1:], chunks)  # it is device-varying under shard_map too
  return jax.lax.scan(add, gram(first), rest)[0]


def hadamard_matvec(zn1: jax.Array, zn2: jax.Array):
  """v -> (G1 o G2) v for G = Zn Zn^T, without forming either: M = Zn1^T (v * Zn2),
  out = rowsum((Zn1 M) * Zn2). O(n d1 d2) time, O(n (d1 + d2) + d1 d2) memory."""

  def matvec(v: jax.Array) -> jax.Array:
    m = matmul(zn1.T, v[:, None] * zn2)
    return jnp.sum(matmul(zn1, m) * zn2, axis=1)

  return matvec
