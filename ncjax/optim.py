"""Gradient filters of Grokfast (Lee et al. 2024, "Grokfast: accelerated grokking by
amplifying slow gradients") as optax transforms, to chain before the optimiser:

    tx = optax.chain(ncjax.optim.grokfast_ema(alpha=0.98, lamb=2.0), optax.adamw(1e-3))

Each returns ``g + lamb * slow(g)`` where ``slow`` is a low-pass filter of the gradient
history. Its state lives in the optimiser state, so checkpoints and exact resume keep it,
and everything is arrays, so it vmaps over seeds. At zero frequency the filter's gain is
``1 + lamb``: a fair baseline also runs the plain optimiser at ``(1 + lamb)`` times the
learning rate (Adam's update is invariant to a constant gradient scale; SGD's is not).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ncjax import _validation as check

__all__ = ["grokfast_ema", "grokfast_ma"]


class GrokfastEmaState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # () int32: gradients seen (optax's name)
  ema: optax.Updates  # exponential moving average of the gradients


class GrokfastMaState(NamedTuple):
  count: jax.Array  # type: ignore[assignment]  # () int32: gradients seen (optax's name)
  window: optax.Updates  # (window, ...) per leaf: the last gradients, a ring buffer


def _check(lamb: float):
  """A concrete lamb must be finite and >= 0; a traced one (a vmapped sweep) is the
  caller's to check."""
  if check.is_concrete(lamb) and not 0 <= lamb < float("inf"):
    raise ValueError(f"lamb must be finite and >= 0, got {lamb}.")


def _same_shapes(updates, like) -> None:
  """Gradients must have their parameters' shapes (no silent broadcasting)."""
  for g, m in zip(jax.tree.leaves(updates), jax.tree.leaves(like), strict=True):
    if jnp.shape(g) != jnp.shape(m):
      raise ValueError(f"a gradient has shape {jnp.shape(g)}, its parameter {jnp.shape(m)}.")


def grokfast_ema(alpha: float = 0.98, lamb: float = 2.0) -> optax.GradientTransformation:
  """``g_t + lamb * m_t`` with ``m_t = alpha * m_{t-1} + (1 - alpha) * g_t``, ``m_1 = g_1``
  (the reference implementation's first-step rule).

  Args:
    alpha: EMA momentum in [0, 1).
    lamb: amplification of the slow component, >= 0.
  Returns:
    An optax transformation (chain it before the optimiser).

  >>> import jax.numpy as jnp
  >>> tx = grokfast_ema(alpha=0.5, lamb=2.0)
  >>> g = {"w": jnp.ones(2)}
  >>> updates, state = tx.update(g, tx.init(g))  # m_1 = g_1: g + 2 g
  >>> updates["w"].tolist()
  [3.0, 3.0]
  """
  if check.is_concrete(alpha) and not 0 <= alpha < 1:
    raise ValueError(f"alpha must be in [0, 1), got {alpha}.")
  _check(lamb)

  def init(params):
    return GrokfastEmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    del params
    _same_shapes(updates, state.ema)
    first = state.count == 0
    ema = jax.tree.map(lambda m, g: jnp.where(first, g, alpha * m + (1 - alpha) * g),
                       state.ema, updates)
    updates = jax.tree.map(lambda g, m: g + lamb * m, updates, ema)
    return updates, GrokfastEmaState(optax.safe_increment(state.count), ema)

  return optax.GradientTransformation(init, update)


def grokfast_ma(window: int = 100, lamb: float = 5.0, *,
                warmup: bool = True) -> optax.GradientTransformation:
  """``g_t + lamb * mean(g_{t-window+1..t})``; with ``warmup`` (the reference's default)
  the gradient passes unchanged until ``window`` gradients have been seen. Memory:
  ``window`` copies of the parameters.

  Args:
    window: number of past gradients averaged, >= 1.
    lamb: amplification of the slow component, >= 0.
    warmup: pass gradients unchanged until ``window`` have been seen.
  Returns:
    An optax transformation (chain it before the optimiser).

  >>> import jax.numpy as jnp
  >>> tx = grokfast_ma(window=2, lamb=1.0)
  >>> g = {"w": jnp.ones(2)}
  >>> updates, state = tx.update(g, tx.init(g))  # warm-up: unchanged
  >>> updates, state = tx.update(g, state)  # g + mean(g, g)
  >>> updates["w"].tolist()
  [2.0, 2.0]
  """
  window = check.static_int(window, "window")
  _check(lamb)

  def init(params):
    return GrokfastMaState(jnp.zeros([], jnp.int32),
                           jax.tree.map(lambda p: jnp.zeros((window, *p.shape), p.dtype), params))

  def update(updates, state, params=None):
    del params
    _same_shapes(updates, jax.tree.map(lambda b: b[0], state.window))
    slot = state.count % window
    buffer = jax.tree.map(lambda b, g: b.at[slot].set(g), state.window, updates)
    seen = jnp.minimum(state.count + 1, window)
    on = (seen == window) | (not warmup)
    updates = jax.tree.map(
        lambda g, b: jnp.where(on, g + lamb * jnp.sum(b, 0) / seen.astype(g.dtype), g),
        updates, buffer)
    return updates, GrokfastMaState(optax.safe_increment(state.count), buffer)

  return optax.GradientTransformation(init, update)
