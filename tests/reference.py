"""Independent float64 NumPy references: dense n x n routes, straight from the definitions."""

import numpy as np


def cosine_gram(z):
  z = np.asarray(z, np.float64)
  zn = z / np.linalg.norm(z, axis=1, keepdims=True)
  return zn @ zn.T


def kernel_entropy(k):
  """-tr(K' log K') with K' = K / tr K, by a dense eigendecomposition."""
  k = np.asarray(k, np.float64)
  w = np.linalg.eigvalsh(k / np.trace(k))
  w = w[w > 0]
  return float(-(w * np.log(w)).sum())


def matrix_entropy(z):
  return kernel_entropy(cosine_gram(z))


def joint_entropy(z1, z2):
  return kernel_entropy(cosine_gram(z1) * cosine_gram(z2))


def mutual_information(z1, z2):
  return matrix_entropy(z1) + matrix_entropy(z2) - joint_entropy(z1, z2)


def mir(z1, z2):
  return mutual_information(z1, z2) / min(matrix_entropy(z1), matrix_entropy(z2))


def hdr(z1, z2):
  h1, h2 = matrix_entropy(z1), matrix_entropy(z2)
  return abs(h1 - h2) / max(h1, h2)


def simplex_etf(num_classes, dim, seed=0):
  """(C, dim) rows forming a simplex ETF: unit norm, pairwise cosine -1/(C-1)."""
  c = num_classes
  centred = np.eye(c) - np.ones((c, c)) / c
  basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, c)))
  m = centred @ basis.T  # (C, dim), rows span a (C-1)-dim subspace
  return m / np.linalg.norm(m, axis=1, keepdims=True)
