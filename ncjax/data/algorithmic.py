"""Modular-arithmetic tasks (Power et al. 2022): all pairs (a, b) labelled (a op b) mod p.

Inputs are token triples ``[a, b, =]`` with ``=`` the token ``p``; the whole dataset
is small enough to live on device.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _divide(a, b, p):
  return a * np.asarray([pow(int(x), p - 2, p) for x in b]) % p  # Fermat inverse, p prime


OPERATIONS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": _divide,
    "x2xyy2": lambda a, b, p: (a * a + a * b + b * b) % p,
}


class Split(NamedTuple):
  """Token inputs (n, 3) int32 ``[a, b, =]`` and labels (n,) int32."""

  inputs: np.ndarray
  labels: np.ndarray


def _is_prime(p: int) -> bool:
  return p >= 2 and all(p % k for k in range(2, int(p**0.5) + 1))


def modular_arithmetic(
    modulus: int, operation: str, train_fraction: float, seed: int
) -> tuple[Split, Split]:
  """All pairs (a, b) in [0, p)^2 (b != 0 for div), shuffled by ``seed`` and split.

  Returns:
    (train, test) splits; the number of classes is ``modulus``, the vocabulary
    ``modulus + 1`` (the extra token is ``=``).
  """
  if operation not in OPERATIONS:
    raise ValueError(f"operation must be one of {sorted(OPERATIONS)}, got {operation!r}.")
  if operation == "div" and not _is_prime(modulus):
    raise ValueError(f"modulus must be prime for div, got {modulus}.")
  if not 0 < train_fraction < 1:
    raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
  a, b = (x.ravel() for x in np.meshgrid(np.arange(modulus), np.arange(modulus), indexing="ij"))
  if operation == "div":
    a, b = a[b != 0], b[b != 0]
  labels = OPERATIONS[operation](a, b, modulus).astype(np.int32)
  inputs = np.stack([a, b, np.full_like(a, modulus)], axis=1).astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(labels))
  cut = int(round(train_fraction * len(labels)))
  train, test = order[:cut], order[cut:]
  return Split(inputs[train], labels[train]), Split(inputs[test], labels[test])
