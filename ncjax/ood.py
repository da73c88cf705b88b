"""Out-of-distribution scores from neural collapse: NCI (Liu & Qin 2023) per sample and
NC5, ID/OOD orthogonality (Ammar et al. 2024, NECO), against the class statistics of the
in-distribution (training) features."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ncjax import _tiling, kernels
from ncjax import _validation as check
from ncjax._tiling import TILE
from ncjax.kernels import matmul
from ncjax.stats import ClassStats, checked, require_distinct_means

__all__ = ["nci_score", "nc5"]


def nci_score(
    stats: ClassStats,
    features: jax.Array,
    *,
    head: jax.Array | None = None,
    kernel: jax.Array | None = None,
    bias: jax.Array | None = None,
    logits: jax.Array | None = None,
    alpha: float = 0.0,
    tile_size: int = TILE,
) -> jax.Array:
  """Per-sample out-of-distribution score of NCI (Liu & Qin 2023, as in pytorch-ood):
  -(w_c . z) / ||z|| - alpha ||h||_1, z = h - mu_G the feature centred at the
  in-distribution global mean, c = argmax(W h + b) the predicted class. Higher means more
  likely out of distribution: an in-distribution feature lies along its class's head row.

  Args:
    stats: ClassStats of the in-distribution (training) features.
    features: (n, d) features h to score (in- or out-of-distribution).
    head: (C, d) classifier weights W.
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
    bias: optional (C,), zero if None.
    logits: optional (n, C) the network's outputs on these features, already computed:
      the predicted class is their argmax (then ``bias`` must be None).
    alpha: weight of the L1 feature-norm term.
    tile_size: classes per argmax block (static).
  Returns:
    (n,) scores.

  >>> import jax.numpy as jnp
  >>> from ncjax import class_stats
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> head = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # rows along the centred means
  >>> ood = jnp.array([[2.0, 0.0], [3.0, 3.5]])  # a class-0 mean; off along (1, 1)
  >>> print(nci_score(stats, ood, head=head, alpha=0.0).round(2))
  [-1.41 -0.16]
  """
  stats = checked(stats, minimum=1)
  features, head, bias, logits, _ = check.classifier_inputs(
      features, None, stats.num_classes, stats.dim, head_=head, bias_=bias, logits_=logits,
      head_required=True, kernel_=kernel)
  if check.is_concrete(alpha) and not np.isfinite(alpha):
    raise ValueError(f"alpha must be finite, got {alpha}.")
  predicted = _tiling.predicted_classes(features, head, bias, logits, tile_size)
  relative = (features - stats.shift) / stats.scale
  z = relative - stats.scaled_global_mean
  at_mean = _within_roundoff(z, relative, stats.scaled_global_mean[None], stats)
  if at_mean is not None and at_mean.any():
    raise ValueError(f"nci_score is 0/0 for features rows {np.flatnonzero(at_mean)[:10].tolist()}"
                     ": they equal the in-distribution global mean (to round-off).")
  z = kernels.unit_rows(z)
  return -jnp.sum(head[predicted] * z, axis=1) - alpha * jnp.sum(jnp.abs(features), axis=1)


def _within_roundoff(diff, a, b, stats: ClassStats) -> np.ndarray | None:
  """Eagerly, (...,) bool: rows of ``diff = a - b`` (..., d), points in ``stats``' frame,
  no larger than the rounding error of the points in the features' own units
  (4 sqrt(d) eps (|shift| / scale + |a| + |b|)): a direction made of round-off.
  None under tracing."""
  if not check.is_concrete(diff, a, b, stats.shift):
    return None
  diff, a, b = (np.asarray(check.host(x), np.float64) for x in (diff, a, b))
  norm = lambda x: np.linalg.norm(x, axis=-1)
  offset = norm(np.asarray(check.host(stats.shift), np.float64)) / float(stats.scale)
  tol = 4 * np.sqrt(diff.shape[-1]) * np.finfo(np.float32).eps * (offset + norm(a) + norm(b))
  return norm(diff) <= tol


def nc5(stats: ClassStats, ood, *, mask: jax.Array | None = None) -> jax.Array:
  """NC5, ID/OOD orthogonality (Ammar et al. 2024, NECO): mean over the classes present
  of |cos(M_c, mu_OOD - mu_G)|, M_c the centred in-distribution class means and mu_OOD
  the mean of out-of-distribution features; both are centred at the in-distribution
  global mean mu_G, so a common offset changes nothing.

  Over a large OOD set, accumulate ``ClassStats`` of the OOD features (one class, say)
  in the same pass that scores them with :func:`nci_score`, and pass those.

  Args:
    stats: ClassStats of the in-distribution features.
    ood: (n, d) OOD features, or a ClassStats of them (its global mean is used).
    mask: optional (n,) bool for OOD features.
  Returns:
    Scalar in [0, 1]; 0 when the OOD mean is orthogonal to every class mean. Raises
    eagerly when the OOD mean equals the ID global mean (0/0); NaN then under jit.

  >>> import jax.numpy as jnp
  >>> from ncjax import class_stats
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> round(float(nc5(stats, jnp.array([[1.0, 1.0], [3.0, 3.0]]))), 4)  # OOD shift along (1, 1)
  0.0
  """
  stats = checked(stats)
  require_distinct_means(stats, "NC5")
  # g = (mu_OOD - mu_G) / scale, measured from the ID reference point: no offset cancels.
  if isinstance(ood, ClassStats):
    if mask is not None:
      raise ValueError("mask goes with OOD features, not with a ClassStats.")
    if ood.dim != stats.dim:
      raise ValueError(f"ood features are {ood.dim}-d, stats {stats.dim}-d.")
    check.classes_present(ood.counts, minimum=1)
    g = ((ood.shift - stats.shift) / stats.scale
         + ood.scaled_global_mean * (ood.scale / stats.scale))
  else:
    ood = check.features(ood, "ood", min_rows=1)
    if ood.shape[1] != stats.dim:
      raise ValueError(f"ood features are {ood.shape[1]}-d, stats {stats.dim}-d.")
    mask = check.as_mask(mask, ood.shape[0])
    check.enough_rows(mask, minimum=1)
    check.finite(ood, "ood", mask)
    x = jnp.where(mask[:, None], (ood - stats.shift) / stats.scale, 0.0)
    g = jnp.sum(x / jnp.sum(mask), axis=0)  # divided first: no overflow
  at_mean = _within_roundoff(g - stats.scaled_global_mean, g, stats.scaled_global_mean, stats)
  if at_mean is not None and at_mean:
    raise ValueError("NC5 is 0/0: the OOD mean equals the in-distribution global mean "
                     "(to round-off).")
  g = g - stats.scaled_global_mean
  g = kernels.unit_rows(g[None, :])[0]
  cos = matmul(kernels.unit_rows(stats.scaled_centred_means, stats.present), g)
  return jnp.sum(jnp.where(stats.present, jnp.abs(cos), 0.0)) / stats.num_present


