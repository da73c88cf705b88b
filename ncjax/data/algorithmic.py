"""Algorithmic tasks of the grokking literature (Power et al. 2022): every pair (a, b) of
a finite set labelled by a binary operation.

- Modular arithmetic and the two-operand polynomials, mod p (:data:`OPERATIONS`);
- ``s5``: composition of permutations of five elements (120 classes).

Inputs are token triples ``[a, b, =]`` with ``=`` the token after the last element
(``num_classes``); the whole dataset is small enough to live on device.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from ncjax import _validation as check


def _inverse(b, p):
  return np.asarray([pow(int(x), p - 2, p) for x in b])  # Fermat, p prime, b != 0


OPERATIONS = {  # (a, b, p) -> label; a, b int64 arrays in [0, p)
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: a * _inverse(b, p) % p,
    "div_or_sub": lambda a, b, p: np.where(b % 2 == 1, a * _inverse(np.where(b % 2 == 1, b, 1), p),
                                           a - b) % p,  # a / b if b is odd, else a - b
    "x2y2": lambda a, b, p: (a * a + b * b) % p,
    "x2xyy2": lambda a, b, p: (a * a + a * b + b * b) % p,
    "x2xyy2x": lambda a, b, p: (a * a + a * b + b * b + a) % p,
    "x3xy": lambda a, b, p: (a**3 + a * b) % p,
    "x3xy2y": lambda a, b, p: (a**3 + a * b * b + b) % p,
}
NEEDS_PRIME = ("div", "div_or_sub")
GROUPS = ("s5",)  # operations on permutations, not mod p

S5 = np.asarray(list(itertools.permutations(range(5))))  # (120, 5), index = class


class Split(NamedTuple):
  """Token inputs (n, 3) int32 ``[a, b, =]`` and labels (n,) int32."""

  inputs: np.ndarray
  labels: np.ndarray


def _is_prime(p: int) -> bool:
  return p >= 2 and all(p % k for k in range(2, int(p**0.5) + 1))


def num_classes(operation: str, modulus: int) -> int:
  """Number of labels (and of elements) of ``operation``: p, or 120 for S5."""
  if operation in GROUPS:
    return len(S5)
  if operation in OPERATIONS:
    return check.static_int(modulus, "modulus", minimum=2)
  raise ValueError(f"operation must be one of {sorted([*OPERATIONS, *GROUPS])}, "
                   f"got {operation!r}.")


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Index of the permutation ``a o b`` (first b, then a: ``(a o b)[i] = a[b[i]]``) for
  indices ``a, b`` into :data:`S5`."""
  perms = S5[a][np.arange(len(a))[:, None], S5[b]]  # row i: S5[a_i][S5[b_i]]
  lookup = {tuple(p): k for k, p in enumerate(S5)}
  return np.asarray([lookup[tuple(p)] for p in perms])


def algorithmic(operation: str, modulus: int, train_fraction: float,
                seed: int) -> tuple[Split, Split]:
  """All pairs (a, b) of the task (b != 0 for div), shuffled by ``seed`` and split.

  Args:
    operation: a key of :data:`OPERATIONS` (mod ``modulus``) or ``s5`` (``modulus``
      unused).

  Returns:
    (train, test) splits; :func:`num_classes` labels, a vocabulary one larger (``=``).
  """
  size = num_classes(operation, modulus)
  if operation in NEEDS_PRIME and not _is_prime(modulus):
    raise ValueError(f"modulus must be prime for {operation}, got {modulus}.")
  check.static_int(seed, "seed", minimum=0)  # None would not be reproducible
  if not 0 < train_fraction < 1:
    raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
  a, b = (x.ravel() for x in np.meshgrid(np.arange(size), np.arange(size), indexing="ij"))
  if operation == "div":
    a, b = a[b != 0], b[b != 0]
  if operation in GROUPS:
    labels = compose(a, b)
  else:
    labels = OPERATIONS[operation](a.astype(np.int64), b.astype(np.int64), modulus)
  inputs = np.stack([a, b, np.full_like(a, size)], axis=1).astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(labels))
  cut = int(round(train_fraction * len(labels)))
  train, test = order[:cut], order[cut:]
  labels = labels.astype(np.int32)
  return Split(inputs[train], labels[train]), Split(inputs[test], labels[test])
