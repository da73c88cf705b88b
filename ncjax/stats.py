"""ClassStats: streaming, mergeable per-class first and second moments.

Batches are reduced around their own class means (a corrected two-pass) and merged
with Chan et al.'s pairwise update, so a large common offset in the features does not
cancel the within-class scatter in float32. The accumulator is a pytree: it can be
carried through ``lax.scan``, vmapped, and reduced across devices with :meth:`psum`.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from ncjax.kernels import matmul


@flax.struct.dataclass
class ClassStats:
  """Per-class counts, means and scatter of features h (d-dim) with labels in [0, C).

  Attributes:
    counts: (C,) samples per class (float).
    means: (C, d) class means mu_c (0 for absent classes).
    within: (d, d) pooled within-class scatter sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T.
    spread: (C,) per-class sum of squared distances ||h_i - mu_c||^2.
  """

  counts: jax.Array
  means: jax.Array
  within: jax.Array
  spread: jax.Array

  @classmethod
  def empty(cls, num_classes: int, dim: int, dtype=jnp.float32) -> "ClassStats":
    """The identity of :meth:`merge`: no samples."""
    return cls(
        counts=jnp.zeros((num_classes,), dtype),
        means=jnp.zeros((num_classes, dim), dtype),
        within=jnp.zeros((dim, dim), dtype),
        spread=jnp.zeros((num_classes,), dtype),
    )

  @classmethod
  def from_batch(
      cls,
      features: jax.Array,
      labels: jax.Array,
      num_classes: int,
      mask: jax.Array | None = None,
  ) -> "ClassStats":
    """Statistics of one batch (no validation; see ``ncjax.class_stats``).

    Args:
      features: (n, d) float; labels: (n,) int in [0, num_classes);
      mask: optional (n,) bool, False rows are ignored.
    """
    onehot = jax.nn.one_hot(labels, num_classes, dtype=features.dtype)
    if mask is not None:
      onehot = onehot * mask[:, None]
      features = jnp.where(mask[:, None], features, 0.0)  # padding may hold NaN
    counts = onehot.sum(0)
    per_class = lambda x: matmul(onehot.T, x) / jnp.maximum(counts, 1)[:, None]
    rough = per_class(features)
    means = rough + per_class(features - rough[labels])  # corrected two-pass mean
    centred = (features - means[labels]) * onehot.sum(1, keepdims=True)
    return cls(
        counts=counts,
        means=means,
        within=matmul(centred.T, centred),
        spread=matmul(onehot.T, jnp.sum(centred**2, axis=1)),
    )

  def update(self, features, labels, mask=None) -> "ClassStats":
    """Adds a batch: ``self.merge(ClassStats.from_batch(...))``."""
    return self.merge(ClassStats.from_batch(features, labels, self.num_classes, mask))

  def merge(self, other: "ClassStats") -> "ClassStats":
    """Statistics of the union of both sample sets (Chan et al. pairwise update)."""
    counts = self.counts + other.counts
    safe = jnp.maximum(counts, 1)
    delta = other.means - self.means
    weight = (self.counts * other.counts / safe)[:, None]
    return ClassStats(
        counts=counts,
        means=self.means + delta * (other.counts / safe)[:, None],
        within=self.within + other.within + matmul((delta * weight).T, delta),
        spread=self.spread + other.spread + weight[:, 0] * jnp.sum(delta**2, axis=1),
    )

  def psum(self, axis_name) -> "ClassStats":
    """Merges the statistics held by every device along ``axis_name`` (inside shard_map)."""
    counts = jax.lax.psum(self.counts, axis_name)
    safe = jnp.maximum(counts, 1)[:, None]
    means = jax.lax.psum(self.means * self.counts[:, None], axis_name) / safe
    delta = self.means - means
    weight = self.counts[:, None]
    return ClassStats(
        counts=counts,
        means=means,
        within=jax.lax.psum(self.within + matmul((delta * weight).T, delta), axis_name),
        spread=jax.lax.psum(self.spread + weight[:, 0] * jnp.sum(delta**2, axis=1), axis_name),
    )

  @property
  def num_classes(self) -> int:
    return self.counts.shape[-1]

  @property
  def present(self) -> jax.Array:
    """(C,) bool: classes with at least one sample."""
    return self.counts > 0

  @property
  def num_present(self) -> jax.Array:
    """Number of classes present (used wherever C appears in a metric)."""
    return jnp.sum(self.present)

  @property
  def total(self) -> jax.Array:
    return jnp.sum(self.counts)

  @property
  def global_mean(self) -> jax.Array:
    """(d,) mean of all samples, mu_G."""
    return matmul(self.counts, self.means) / self.total

  @property
  def centred_means(self) -> jax.Array:
    """(C, d) M_c = mu_c - mu_G; zero rows for absent classes."""
    return jnp.where(self.present[:, None], self.means - self.global_mean, 0.0)

  @property
  def class_variances(self) -> jax.Array:
    """(C,) v_c: mean squared distance of class c's samples to mu_c."""
    return self.spread / jnp.maximum(self.counts, 1)

  @property
  def sigma_w(self) -> jax.Array:
    """(d, d) within-class covariance, averaged over all samples."""
    return self.within / self.total

  @property
  def sigma_b(self) -> jax.Array:
    """(d, d) Papyan's between-class covariance, unweighted over present classes."""
    m = self.centred_means
    return matmul(m.T, m) / self.num_present

  @property
  def sigma_b_weighted(self) -> jax.Array:
    """(d, d) class-frequency weighted between-class covariance (Sigma_T - Sigma_W)."""
    m = self.centred_means * jnp.sqrt(self.counts / self.total)[:, None]
    return matmul(m.T, m)

  @property
  def sigma_t(self) -> jax.Array:
    """(d, d) total covariance Sigma_W + weighted Sigma_B."""
    return self.sigma_w + self.sigma_b_weighted
