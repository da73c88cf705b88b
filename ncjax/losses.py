"""Losses usable in any optax loop: plain functions of logits, features, labels and a mask.

- :func:`cross_entropy`: softmax cross-entropy, label smoothing, temperature.
- :func:`info_regularizer`: the first paper's information regulariser between features
  and the head rows of their labels.
- :func:`cma_loss`: the first paper's Cross-Model Alignment loss (per-class entropy of
  the features grouped with their class embedding).
- :func:`supervised_loss`: their combination, as the trainer uses it (``config.loss``).

All entropies come from :mod:`ncjax.info` (no second implementation). All-zero feature
rows (dead ReLU features) have no direction and are left out of the entropies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ncjax import _validation as check
from ncjax import info

__all__ = ["cross_entropy", "info_regularizer", "cma_loss", "supervised_loss"]


def cross_entropy(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0,
                  temperature: float = 1.0, mask: jax.Array | None = None) -> jax.Array:
  """Mean softmax cross-entropy of ``logits / temperature`` over the unmasked rows.

  Args:
    logits: (n, C) floating (half precision is computed in float32); labels: (n,) int
      in [0, C); label_smoothing: in [0, 1), the target is (1 - s) one_hot + s / C;
      temperature: finite, > 0; mask: optional (n,) bool (False: padding, whose values
      never reach the loss or its gradient; 0 when no row is kept). A traced
      label_smoothing or temperature (a member's value in a vmapped sweep) is not checked
      here: the config's validation checked it.
  Returns:
    Scalar loss.

  >>> import jax.numpy as jnp
  >>> print(f"{cross_entropy(jnp.array([[2.0, 0.0], [0.0, 2.0]]), jnp.array([0, 1])):.4f}")
  0.1269
  """
  logits = check.real_floating(logits, "logits")  # bfloat16/float16 computed in float32
  if logits.ndim != 2 or logits.shape[1] < 1:
    raise ValueError(f"logits must be 2-D (n, C) with C >= 1, got shape {logits.shape}.")
  n, num_classes = logits.shape
  mask = check.as_mask(mask, n)
  labels = check.labels(labels, n, num_classes, mask=mask)
  check.finite(logits, "logits", mask)
  if check.is_concrete(label_smoothing) and not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
  if check.is_concrete(temperature) and not 0 < temperature < float("inf"):
    raise ValueError(f"temperature must be finite and > 0, got {temperature}.")
  # Padding rows may hold anything (NaN included): replaced before any arithmetic, so
  # they reach neither the loss nor its gradient.
  logits = jnp.where(mask[:, None], logits, 0.0)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes, dtype=logits.dtype),
                                label_smoothing)
  losses = optax.softmax_cross_entropy(logits / temperature, targets)
  return jnp.sum(jnp.where(mask, losses, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def _feature_inputs(features, labels, embeddings, mask, embeddings_name: str):
  """Validated (features (n, d), labels (n,), embeddings (C, d), mask (n,)): the mask
  also drops all-zero feature rows."""
  features = check.features(features, "features", min_rows=1)
  n, d = features.shape
  embeddings = check.real_floating(embeddings, embeddings_name)
  if embeddings.ndim != 2 or embeddings.shape[1] != d:
    raise ValueError(f"{embeddings_name} must have shape (C, {d}) to match the features, "
                     f"got {embeddings.shape}.")
  check.finite(embeddings, embeddings_name)
  check.rows_nonzero(embeddings, jnp.ones(embeddings.shape[0], bool), embeddings_name)
  mask = check.as_mask(mask, n)
  labels = check.labels(labels, n, embeddings.shape[0], mask=mask)
  check.finite(features, "features", mask)
  return features, labels, embeddings, mask & jnp.any(features != 0, axis=1)


def info_regularizer(features: jax.Array, labels: jax.Array, head: jax.Array, *,
                     lam: float, lam2: float, mask: jax.Array | None = None) -> jax.Array:
  """``-lam * I(G(f); G(w_y)) + lam2 * |H(G(f)) - H(G(w_y))|`` on a batch.

  Maximises the matrix mutual information between the features f_i and the head rows
  w_{y_i} of their labels, and penalises their entropy difference (Song et al. 2024).

  Args:
    features: (n, d); labels: (n,) int in [0, C); head: (C, d) classifier rows;
    lam, lam2: weights; mask: optional (n,) bool (False: padding).
  Returns:
    Scalar (differentiable in ``features`` and ``head``).

  >>> import jax.numpy as jnp
  >>> f, w = jnp.eye(2), jnp.eye(2)  # G(f) = G(w_y) = I: I(G(f); G(w_y)) = log 2
  >>> print(f"{info_regularizer(f, jnp.array([0, 1]), w, lam=1.0, lam2=1.0):.4f}")
  -0.6931
  """
  features, labels, head, mask = _feature_inputs(features, labels, head, mask, "head")
  h_f, h_w, h_joint = info.entropies(features, head[labels], mask=mask)
  return -lam * (h_f + h_w - h_joint) + lam2 * jnp.abs(h_f - h_w)


def cma_loss(features: jax.Array, labels: jax.Array, class_embeddings: jax.Array, *,
             num_classes: int, mask: jax.Array | None = None) -> jax.Array:
  """Cross-Model Alignment loss: mean over the classes present in the batch of the
  normalised matrix entropy of the group [features of class c; embedding t_c].

  A group whose rows all point the same way (the features aligned with their class
  embedding) has entropy 0. Absent classes contribute nothing; the shapes are static
  (one masked group per class), so it compiles once.

  Args:
    features: (n, d); labels: (n,) int in [0, C); class_embeddings: (C, d), e.g. the head
      rows or fixed text embeddings; num_classes: C (static); mask: optional (n,) bool.
  Returns:
    Scalar in [0, 1] (0 when no class is present).

  >>> import jax.numpy as jnp
  >>> f = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # along e_0, e_1
  >>> labels, t = jnp.array([0, 0, 1, 1]), jnp.eye(2)
  >>> print(f"{cma_loss(f, labels, t, num_classes=2):.4f}", f"{cma_loss(f, labels, t[::-1], num_classes=2):.4f}")
  0.0000 0.5794
  """
  num_classes = check.num_classes(num_classes)
  features, labels, class_embeddings, mask = _feature_inputs(
      features, labels, class_embeddings, mask, "class_embeddings")
  if class_embeddings.shape[0] != num_classes:
    raise ValueError(f"class_embeddings must have {num_classes} rows (num_classes), got "
                     f"{class_embeddings.shape[0]}.")

  def group(c):
    rows = jnp.concatenate([features, class_embeddings[c][None]])
    keep = jnp.concatenate([mask & (labels == c), jnp.ones((1,), bool)])
    size = jnp.sum(keep)
    h = info.matrix_entropy(rows, mask=keep)
    present = size >= 2
    return jnp.where(present, h / jnp.log(jnp.maximum(size, 2)), 0.0), present

  h, present = jax.vmap(group)(jnp.arange(num_classes))
  return jnp.sum(h) / jnp.maximum(jnp.sum(present), 1)


def supervised_loss(logits: jax.Array, labels: jax.Array, features: jax.Array,
                    head: jax.Array, *, label_smoothing: float = 0.0,
                    temperature: float = 1.0, info_lam: float = 0.0, info_lam2: float = 0.0,
                    cma_lam: float = 0.0, mask: jax.Array | None = None) -> jax.Array:
  """``(1 - cma_lam) CE + cma_lam CMA(features, head rows) + info_regularizer``; each extra
  term is left out (not computed) when its weight is 0.

  Args:
    logits: (n, C); labels: (n,); features: (n, d); head: (C, d); mask: optional (n,)
    bool. The rest as in :func:`cross_entropy`, :func:`info_regularizer`, :func:`cma_loss`.
  Returns:
    Scalar loss.

  >>> import jax.numpy as jnp
  >>> logits, f, labels = jnp.array([[2.0, 0.0], [0.0, 2.0]]), jnp.eye(2), jnp.array([0, 1])
  >>> print(f"{supervised_loss(logits, labels, f, jnp.eye(2), info_lam=1.0):.4f}")  # CE - log 2
  -0.5662
  """
  loss = cross_entropy(logits, labels, label_smoothing=label_smoothing,
                       temperature=temperature, mask=mask)
  if cma_lam:
    cma = cma_loss(features, labels, head, num_classes=head.shape[0], mask=mask)
    loss = (1 - cma_lam) * loss + cma_lam * cma
  if info_lam or info_lam2:
    loss += info_regularizer(features, labels, head, lam=info_lam, lam2=info_lam2, mask=mask)
  return loss
