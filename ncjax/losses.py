"""Losses usable in any optax loop: plain functions of logits, labels and a mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0,
                  mask: jax.Array | None = None) -> jax.Array:
  """Mean softmax cross-entropy over the unmasked rows, optionally label-smoothed.

  Args:
    logits: (n, C); labels: (n,) int in [0, C); label_smoothing: in [0, 1), the target
      is (1 - s) one_hot + s / C; mask: optional (n,) bool.
  Returns:
    Scalar loss.
  """
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype),
                                label_smoothing)
  losses = optax.softmax_cross_entropy(logits, targets)
  if mask is None:
    return jnp.mean(losses)
  return jnp.sum(jnp.where(mask, losses, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
