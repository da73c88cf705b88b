"""Chance levels of the metrics: what a curve must rise above (or fall below) to mean
anything, and the simplex-ETF value it would reach at neural collapse.

- :func:`gaussian_null`: the head-vs-means metrics (MIR, HDR, entropies, MI, NC3, UNC3) of
  independent Gaussian head rows W and class means M (C x d, M centred as the evaluator
  centres the means), and :func:`sample_null` for the sample-level pair (z_i, w_{y_i}).
  Functions of the shapes only: cached per shape, so a training loop pays once.
- :func:`permutation_null`: the collapse metrics (NC1, VCI, CDNV, NC2 of the means,
  GNC2) of the same features with the labels permuted (class counts kept).
- :func:`simplex_etf`: the information metrics at a simplex ETF with W proportional to M.

Each null is the mean and the standard deviation over ``draws`` independent draws,
returned as ``{f"{name}_null": mean, f"{name}_null_std": std}``, the suffixes of the
evaluator's keys (``collapse/mir_null``, ``collapse/mir_null_std``); the ETF values come
as ``{f"{name}_etf": value}``.

Measured (float32, 16 draws, d = 128): MIR 0.984 +- 0.004 at C = 10 (above the ETF's
0.952) and 0.899 +- 0.001 at C = 113; HDR 0.046 at C = 10 (centring M leaves rank C - 1).
"""

from __future__ import annotations

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from ncjax import _validation as check
from ncjax import collapse, info, keys, spectral
from ncjax.kernels import matmul
from ncjax.stats import ClassStats, class_stats

__all__ = ["gaussian_null", "gaussian_draws", "sample_null", "permutation_null",
           "permutation_metrics", "permuted_labels", "summarize", "simplex_etf"]

DRAWS = 16  # Gaussian draws (cached: paid once per shape)


def summarize(values: dict) -> dict:
  """``{name: (..., draws) values}`` -> ``{name_null: mean, name_null_std: std}`` over the
  last axis (a leading axis of states is kept).

  >>> import numpy as np
  >>> {k: round(float(v), 4) for k, v in summarize({"mir": np.array([0.5, 0.7])}).items()}
  {'mir_null': 0.6, 'mir_null_std': 0.1}
  """
  out = {}
  for name, v in values.items():
    out[name + keys.NULL] = v.mean(-1)
    out[name + keys.NULL_STD] = v.std(-1)
  return out


def _host(values: dict) -> dict[str, float]:
  return {k: float(v) for k, v in summarize(jax.device_get(values)).items()}


@functools.partial(jax.jit, static_argnames=("num_classes", "dim", "draws"))
def gaussian_draws(key: jax.Array, *, num_classes: int, dim: int,
                   draws: int = DRAWS) -> dict[str, jax.Array]:
  """:data:`~ncjax.keys.GAUSSIAN_METRICS` of ``draws`` independent pairs W, G ~ N(0, I)
  (C x d each), M = G minus its mean row (the centred means of features independent of
  the head).

  Args:
    key: PRNG key. num_classes, dim: static C and d.
    draws: static number of draws (vmapped).
  Returns:
    Dict of (draws,) arrays.

  >>> import jax
  >>> draws = gaussian_draws(jax.random.key(0), num_classes=5, dim=3, draws=4)
  >>> draws["mir"].shape
  (4,)
  """
  labels = jnp.arange(num_classes)

  def one(k):
    k_head, k_means = jax.random.split(k)
    head = jax.random.normal(k_head, (num_classes, dim))
    stats = class_stats(jax.random.normal(k_means, (num_classes, dim)), labels,
                        num_classes=num_classes)  # one row per class: its mean
    out = collapse.collapse_metrics_from_stats(stats, head=head)
    return {k: out[k] for k in keys.GAUSSIAN_METRICS}

  return jax.vmap(one)(jax.random.split(key, draws))


@functools.lru_cache(maxsize=64)
def gaussian_null(*, num_classes: int, dim: int, draws: int = DRAWS,
                  seed: int = 0) -> dict[str, float]:
  """Chance level of the head-vs-means metrics for a (C, d) head and (C, d) class means:
  mean and std of :func:`gaussian_draws`, cached per (C, d, draws, seed).

  Returns:
    ``{f"{name}_null": mean, f"{name}_null_std": std}`` for name in
    :data:`ncjax.keys.GAUSSIAN_METRICS`.

  >>> null = gaussian_null(num_classes=10, dim=128)
  >>> round(null["mir_null"], 3), null["mir_null_std"] < 0.01  # above the ETF's 0.952
  (0.984, True)
  """
  # >= 3 classes: two centred means are parallel, their Gram has entropy 0
  return _host(gaussian_draws(jax.random.key(seed),
                              num_classes=check.static_int(num_classes, "num_classes", 3),
                              dim=check.static_int(dim, "dim"),
                              draws=check.static_int(draws, "draws", 2)))


@functools.partial(jax.jit, static_argnames=("num_classes", "dim", "draws"))
def _sample_draws(key, labels, *, num_classes, dim, draws):
  def one(k):
    k_z, k_w = jax.random.split(k)
    z = jax.random.normal(k_z, (labels.shape[0], dim))
    h_z, h_w, h_joint = info.label_entropies(
        z, jax.random.normal(k_w, (num_classes, dim)), labels)
    return dict(zip(keys.SAMPLE_METRICS, (info.mir_from_entropies(h_z, h_w, h_joint),
                                          info.hdr_from_entropies(h_z, h_w), h_z, h_w), strict=True))

  return jax.vmap(one)(jax.random.split(key, draws))


@functools.lru_cache(maxsize=64)
def sample_null(*, counts: tuple[int, ...], dim: int, draws: int = DRAWS,
                seed: int = 0) -> dict[str, float]:
  """Chance level of the sample-level metrics (features z_i against head rows w_{y_i},
  :func:`ncjax.label_entropies`): z (n, d) and W (C, d) independent N(0, I), ``counts[c]``
  samples of class c (n = sum of counts). Cached per (counts, d, draws, seed).

  Returns:
    ``{f"{name}_null": mean, f"{name}_null_std": std}`` for name in
    :data:`ncjax.keys.SAMPLE_METRICS`.

  >>> null = sample_null(counts=(8,) * 4, dim=16)
  >>> 0.0 < null["mir_null"] < 1.0
  True
  """
  counts = tuple(check.static_int(c, "counts", 0) for c in counts)
  labels = jnp.asarray(np.repeat(np.arange(len(counts)), counts), jnp.int32)
  if labels.shape[0] < 2:
    raise ValueError(f"counts must sum to >= 2 samples, got {sum(counts)}.")
  return _host(_sample_draws(jax.random.key(seed), labels, num_classes=len(counts),
                             dim=check.static_int(dim, "dim"),
                             draws=check.static_int(draws, "draws", 2)))


def permuted_labels(key: jax.Array, labels: jax.Array,
                    mask: jax.Array | None = None) -> jax.Array:
  """``labels`` (n,) shuffled among the rows where ``mask`` (n,) is True; masked-out
  rows keep theirs, so class counts over the kept rows are unchanged.

  >>> import jax, jax.numpy as jnp
  >>> y = permuted_labels(jax.random.key(0), jnp.array([0, 0, 1, 2, 5]),
  ...                     jnp.array([True, True, True, True, False]))
  >>> sorted(y[:4].tolist()), int(y[4])
  ([0, 0, 1, 2], 5)
  """
  labels = jnp.asarray(labels)
  mask = jnp.ones(labels.shape, bool) if mask is None else jnp.asarray(mask)
  shuffled = jnp.argsort(jnp.where(mask, jax.random.uniform(key, labels.shape), 2.0))
  in_order = jnp.argsort(~mask, stable=True)  # kept rows first, each group in order
  return labels.at[in_order].set(labels[shuffled])


@flax.struct.dataclass
class PermutedSums:
  """Class sums of features under ``draws`` label permutations, streamed beside the
  ClassStats of the true labels and in its frame (its ``shift`` and ``scale``): the
  total scatter does not depend on the labels, so each draw needs only its class counts
  (R, C), sums (R, C, d) and summed squared norms (R, C) of (h - shift) / scale, not
  an n x d x d scatter of its own. ``empty`` / ``update`` / ``stats``.
  """

  counts: jax.Array
  sums: jax.Array
  squares: jax.Array
  scale: jax.Array

  @classmethod
  def empty(cls, draws: int, num_classes: int, dim: int) -> PermutedSums:
    zeros = lambda *shape: jnp.zeros(shape, jnp.float32)
    return cls(zeros(draws, num_classes), zeros(draws, num_classes, dim),
               zeros(draws, num_classes), jnp.ones((), jnp.float32))

  def update(self, stats: ClassStats, features: jax.Array, labels: jax.Array,
             mask: jax.Array) -> PermutedSums:
    """Adds a batch: features (n, d), ``labels`` (R, n) one permutation per draw, mask (n,);
    ``stats``: the true labels' ClassStats with this batch already added (the frame)."""
    c = stats.num_classes
    x = jnp.where(mask[:, None], (features - stats.shift) / stats.scale, 0.0)
    ratio = jnp.where(jnp.sum(self.counts) > 0, self.scale / stats.scale, 0.0)  # exact
    per_class = lambda v, y: jax.ops.segment_sum(v, y, c)
    draw = lambda y: (per_class(mask.astype(x.dtype), y), per_class(x, y),
                      per_class(jnp.sum(x**2, axis=1), y))
    counts, sums, squares = jax.vmap(draw)(jnp.where(mask, labels, 0))
    return PermutedSums(self.counts + counts, self.sums * ratio + sums,
                        self.squares * ratio**2 + squares, stats.scale)

  def stats(self, stats: ClassStats) -> ClassStats:
    """The (R,)-stacked ClassStats of the draws, from these sums and the true labels'
    ``stats`` (its total scatter, which every permutation shares)."""
    global_mean = stats.scaled_global_mean
    between = lambda n, means: matmul(((means - global_mean) * n[:, None]).T,
                                      means - global_mean)
    total = stats.scaled_within + between(stats.counts, stats.scaled_means)

    def one(counts, sums, squares):
      means = sums / jnp.maximum(counts, 1)[:, None]
      return ClassStats(counts=counts, shift=stats.shift, scale=stats.scale,
                        scaled_means=jnp.where(counts[:, None] > 0, means, 0.0),
                        scaled_within=total - between(counts, means),
                        scaled_spread=squares - counts * jnp.sum(means**2, axis=1))

    return jax.vmap(one)(self.counts, self.sums, self.squares)


def permuted_metrics(stats: ClassStats, sums: PermutedSums,
                     sigma_t: tuple[jax.Array, jax.Array] | None = None) -> dict[str, jax.Array]:
  """:data:`ncjax.keys.PERMUTATION_METRICS` of every draw of ``sums`` (``(R,)`` each), the true labels'
  ``stats`` beside them; one eigendecomposition of Sigma_T serves all draws (``sigma_t``:
  ``spectral.psd_eigh_core(stats.scaled_sigma_t)`` if already computed)."""
  if sigma_t is None:
    sigma_t = spectral.psd_eigh_core(stats.scaled_sigma_t)
  return jax.vmap(lambda s: permutation_metrics(s, sigma_t))(sums.stats(stats))


def permutation_metrics(stats: ClassStats,
                        sigma_t: tuple[jax.Array, jax.Array] | None = None) -> dict[str, jax.Array]:
  """:data:`ncjax.keys.PERMUTATION_METRICS` of ``stats`` (under jit the other metrics are not computed);
  ``sigma_t``: its Sigma_T's eigendecomposition if known (``ncjax.collapse_metrics_from_stats``).

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
  >>> round(float(permutation_metrics(class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2))["nc1"]), 4)
  0.125
  """
  out = collapse.collapse_metrics_from_stats(stats, sigma_t=sigma_t)
  return {k: out[k] for k in keys.PERMUTATION_METRICS}


def permutation_null(features: jax.Array, labels: jax.Array, *, num_classes: int,
                     key: jax.Array, draws: int = 8,
                     mask: jax.Array | None = None) -> dict[str, jax.Array]:
  """Label-permutation baseline of the collapse metrics:
  :data:`ncjax.keys.PERMUTATION_METRICS` of ``features`` with ``labels`` permuted
  (:func:`permuted_labels`), ``draws`` times.

  Jit with ``jax.jit(permutation_null, static_argnames=("num_classes", "draws"))``.

  Args:
    features: (n, d). labels: (n,) int in [0, num_classes). num_classes: static C.
    key: PRNG key; draw r uses ``jax.random.split(key, draws)[r]``.
    draws: static number of permutations (vmapped).
    mask: optional (n,) bool; False rows are ignored.
  Returns:
    ``{f"{name}_null": mean, f"{name}_null_std": std}``, scalars.

  >>> import jax
  >>> z = jax.random.normal(jax.random.key(1), (64, 4))
  >>> y = jax.numpy.arange(64) % 4
  >>> null_jit = jax.jit(permutation_null, static_argnames=("num_classes", "draws"))
  >>> null = null_jit(z, y, num_classes=4, key=jax.random.key(0))
  >>> bool(null["vci_null"] > 0.9)  # permuted labels explain almost none of the variance
  True
  """
  features = check.features(features, "features", min_rows=2)
  mask = check.as_mask(mask, features.shape[0])

  def one(k):
    y = permuted_labels(k, labels, mask)
    return permutation_metrics(class_stats(features, y, num_classes=num_classes, mask=mask))

  return summarize(jax.vmap(one)(jax.random.split(key, check.static_int(draws, "draws", 2))))


@functools.lru_cache(maxsize=64)
def simplex_etf(num_classes: int) -> dict[str, float]:
  """:data:`ncjax.keys.ETF_METRICS` at neural collapse: centred means M a simplex ETF and
  W = a M.

  G(M) = (C I - J) / (C - 1) has eigenvalue C / (C - 1) (C - 1 times), so H = log(C - 1)
  and HDR = 0. G o G = (1 - b) I + b J, b = 1 / (C - 1)^2, has normalised eigenvalues
  1 / (C - 1) (once) and (C - 2) / (C - 1)^2 (C - 1 times), so
  H(G o G) = ((2C - 3) log(C - 1) - (C - 2) log(C - 2)) / (C - 1) and
  MIR = 1 / (C - 1) + (C - 2) log(C - 2) / ((C - 1) log(C - 1)).

  >>> round(simplex_etf(10)["mir_etf"], 4), round(simplex_etf(10)["entropy_means_etf"], 4)
  (0.9524, 2.1972)
  """
  c = check.static_int(num_classes, "num_classes", 3)  # two centred means: entropy 0
  h = math.log(c - 1)
  joint = ((2 * c - 3) * h - (c - 2) * math.log(c - 2)) / (c - 1)
  values = {"entropy_head": h, "entropy_means": h, "mi": 2 * h - joint,
            "mir": (2 * h - joint) / h, "hdr": 0.0}
  return {k + keys.ETF: values[k] for k in keys.ETF_METRICS}
