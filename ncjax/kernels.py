"""Kernels on features: row normalisation, cosine Gram, Hadamard (Kronecker) features.

Matrix products here use full float32 precision ("highest"): on TPU the default
would round the operands to bfloat16, which visibly biases small eigenvalues.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


def normalize_rows(z: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """L2-normalises the rows of z; masked-out rows become zero.

  Args:
    z: (n, d) features.
    mask: optional (n,) bool; False rows are set to 0 (with finite gradients).
  Returns:
    (n, d) rows of unit norm (zero where masked). An unmasked zero row gives NaN.
  """
  if mask is None:
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)
  z = jnp.where(mask[:, None], z, 0.0)
  norm = jnp.linalg.norm(jnp.where(mask[:, None], z, 1.0), axis=-1, keepdims=True)
  return jnp.where(mask[:, None], z / norm, 0.0)


def cosine_gram(z: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Cosine-similarity Gram matrix G = Zn Zn^T of the L2-normalised rows.

  Args:
    z: (n, d) features.
    mask: optional (n,) bool; masked rows and columns are zero.
  Returns:
    (n, n) PSD with unit diagonal on unmasked rows.
  """
  zn = normalize_rows(z, mask)
  return matmul(zn, zn.T)


def trace_normalize(k: jax.Array) -> jax.Array:
  """Returns k / tr(k) for a (..., n, n) matrix."""
  return k / jnp.trace(k, axis1=-2, axis2=-1)[..., None, None]


def hadamard_features(z1: jax.Array, z2: jax.Array) -> jax.Array:
  """Row-wise Kronecker (Khatri-Rao) product: F F^T = (Z1 Z1^T) o (Z2 Z2^T).

  Args:
    z1: (n, d1); z2: (n, d2).
  Returns:
    (n, d1 * d2) with row i = kron(z1[i], z2[i]).
  """
  n = z1.shape[0]
  return (z1[:, :, None] * z2[:, None, :]).reshape(n, -1)
