"""Metrics at parameter points training never visited, all K points one vmapped state.

    params = points.interpolate(a, b, alphas)            # leaves (K, ...)
    params, masks = points.magnitude_prune(p, sparsities)
    states = points.states_at(params, batch_stats, task.model, tx)
    states = points.recompute_batch_stats(states, inputs)
    metrics = task.evaluate(states)                      # the trainer's metrics, (K,) each
    rows = points.measure(task, states, "run", "alpha", alphas)  # those, with fresh BN

The points form the leading axis that seeds form in training, so the trainer's evaluator
measures all K of them in one compiled pass. BatchNorm statistics are the training run's
running averages at the end point they came from, which describe none of the new points:
:func:`recompute_batch_stats` measures them afresh at each point.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from jax.sharding import Mesh

from ncjax.models import NNXModel
from ncjax.models.vision import BN_MOMENTUM
from ncjax.train import checkpoints, meshes
from ncjax.train.state import LossFn, TrainState, make_train_step


def interpolate(a: dict, b: dict, alphas: Sequence[float] | np.ndarray) -> dict:
  """``(1 - alpha) a + alpha b`` for each alpha: leaves (K, ...) from two trees of the
  same structure and shapes (linear mode connectivity)."""
  values = np.asarray(alphas, float)
  if values.ndim != 1 or not values.size or not np.all(np.isfinite(values)):
    raise ValueError(f"alphas must list finite values, got {values!r}.")
  if jax.tree.map(np.shape, a) != jax.tree.map(np.shape, b):
    raise ValueError("interpolate: a and b must have the same structure and shapes.")
  t_all = jnp.asarray(values, jnp.float32)

  def line(x, y):
    t = t_all.reshape(-1, *([1] * jnp.ndim(x)))
    return ((1 - t) * x + t * y).astype(jnp.result_type(x))

  return jax.tree.map(line, a, b)


def _prunable(path) -> bool:
  return getattr(path[-1], "key", None) == "kernel"


def check_sparsities(sparsities) -> np.ndarray:
  """``sparsities`` as a (K,) array; ValueError unless K >= 1 values in [0, 1)."""
  values = np.asarray(sparsities, float)
  if values.ndim != 1 or not values.size or not np.all((values >= 0) & (values < 1)):
    raise ValueError(f"sparsities must list values in [0, 1), got {sparsities!r}.")
  return values


def magnitude_prune(params: dict, sparsities: Sequence[float] | np.ndarray
                    ) -> tuple[dict, dict]:
  """Global magnitude pruning: for each sparsity s, the fraction s of all weight matrices'
  and convolution kernels' entries (leaves named ``kernel``, the head's included) with the
  smallest |w| pooled over every layer set to 0; biases and BatchNorm parameters kept.

  Returns:
    (pruned params, masks): leaves (K, ...); a mask is 1.0 where a weight is kept (1.0
    everywhere for leaves that are not pruned).
  """
  fractions = check_sparsities(sparsities)
  leaves = [np.abs(np.asarray(x)).ravel()
            for path, x in jax.tree_util.tree_leaves_with_path(params) if _prunable(path)]
  if not leaves:
    raise ValueError("magnitude_prune: no leaf named 'kernel' in params.")
  pooled = np.sort(np.concatenate(leaves))
  if not np.all(np.isfinite(pooled)):
    raise ValueError("magnitude_prune: params contain NaN or Inf weights.")
  # Threshold: the k-th smallest magnitude; |w| > threshold is kept (ties are pruned).
  k = np.floor(fractions * pooled.size).astype(int)
  thresholds = (np.where(k > 0, pooled[np.maximum(k - 1, 0)], -np.inf) if pooled.size
                else np.full(len(k), -np.inf))  # only empty kernels: nothing to prune

  def mask(path, x):
    x = np.asarray(x)
    if not _prunable(path):
      return np.ones((len(k), *x.shape), x.dtype)
    t = thresholds.reshape(-1, *([1] * x.ndim))
    return (np.abs(x)[None] > t).astype(x.dtype)

  masks = jax.tree_util.tree_map_with_path(mask, params)
  return jax.tree.map(lambda x, m: np.asarray(x)[None] * m, params, masks), masks


def states_at(params: dict, batch_stats: dict, model: nn.Module | NNXModel,
              tx: optax.GradientTransformation) -> TrainState:
  """A TrainState whose K members are the parameter points (leaves (K, ...)) with
  ``batch_stats`` (leaves (K, ...); {} if the model has none) and a fresh ``tx`` state."""
  create = lambda p, s: TrainState.create(apply_fn=model.apply, params=p, tx=tx, batch_stats=s)
  return jax.vmap(create)(params, batch_stats)


def recompute_batch_stats(states: TrainState, inputs: jax.Array, batch_size: int = 512
                          ) -> TrainState:
  """``states`` with every BatchNorm's running mean and variance replaced by the mean over
  batches of ``inputs`` (n, ...) of the batch statistics at each member's own parameters
  (in train mode, layer by layer, as PyTorch's BatchNorm reset with momentum None does).
  Unchanged for models without BatchNorm. A last partial batch is dropped unless it is the
  only one."""
  if not states.batch_stats:
    return states
  n = len(inputs)
  size = min(batch_size, n)

  @jax.jit
  @jax.vmap
  def batch_statistics(state, x):
    zeros = jax.tree.map(jnp.zeros_like, state.batch_stats)
    _, updates = state.apply_fn({"params": state.params, "batch_stats": zeros}, x,
                                train=True, mutable=["batch_stats"])
    # Started from zeros, the update is (1 - momentum) * the batch statistic.
    return jax.tree.map(lambda u: u / (1 - BN_MOMENTUM), updates["batch_stats"])

  members = jnp.shape(states.step)[0]
  total, count = None, 0
  for start in range(0, n - size + 1, size):
    x = jnp.broadcast_to(inputs[start:start + size], (members, size, *inputs.shape[1:]))
    stats = batch_statistics(states, x)
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    count += 1
  return states.replace(batch_stats=jax.tree.map(lambda s: s / count, total))


def finetune(states: TrainState, masks: dict, stream, loss_fn: LossFn, steps: int,
             mesh: Mesh) -> TrainState:
  """``steps`` train steps of every member (the pruned networks) on the batches of
  ``stream`` (member 0's batch of each, shared by all K), each member's pruned weights
  held at 0 (``masks``, leaves (K, ...)) after every step; on ``mesh`` (the task's)."""
  step_fn = make_train_step(loss_fn, mesh)
  batches = meshes.batch_sharding(mesh)
  states = jax.device_put(states, meshes.members_sharding(mesh))
  project = jax.jit(lambda s: s.replace(params=jax.tree.map(jnp.multiply, s.params, masks)))
  members = jnp.shape(states.step)[0]
  for _ in tqdm.trange(steps, desc="fine-tune", dynamic_ncols=True, disable=None):
    batch = jax.device_put(jax.tree.map(
        lambda x: jnp.broadcast_to(x[0], (members, *x.shape[1:])), next(stream)), batches)
    states, _ = step_fn(states, batch)
    states = project(states)
  return states


BATCH_STATS_SAMPLES = 4096  # train examples for the BatchNorm statistics at each point


def final_weights(workdir: str, members: list[int]) -> tuple[dict, dict]:
  """(params, batch_stats) of the given members of the run's newest checkpoint: leaves
  (len(members), ...), host arrays."""
  weights = checkpoints.restore_weights(workdir)
  pick = lambda tree: jax.tree.map(lambda x: np.asarray(x)[members], tree)
  return pick(weights["params"]), pick(weights["batch_stats"])


def measure(task, states: TrainState, label: str, x_name: str, xs) -> list[dict]:
  """The trainer's metrics (``task.evaluate``) of the K members of ``states``, their
  BatchNorm statistics recomputed at each on the task's train examples: one row per
  point, ``{"run": label, x_name: x, key: value, ...}``."""
  inputs, _ = task.examples("train", BATCH_STATS_SAMPLES)
  states = recompute_batch_stats(states, inputs)
  values = meshes.fetch(task.evaluate(states, np.zeros(len(xs), int)))
  return [{"run": label, x_name: float(x), **{k: float(v[i]) for k, v in values.items()}}
          for i, x in enumerate(xs)]


def barrier(xs: np.ndarray, ys) -> float:
  """max over the path of y minus the straight line between its end values: xs (K,)
  increasing positions, ys (K,) values.

  >>> barrier(np.array([0.0, 0.5, 1.0]), [1.0, 3.0, 2.0])
  1.5
  """
  ys = np.asarray(ys, float)
  t = (xs - xs[0]) / (xs[-1] - xs[0])
  return float(np.max(ys - ((1 - t) * ys[0] + t * ys[-1])))
