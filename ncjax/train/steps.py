"""TrainState creation, the jitted train step, and the on-device metrics call."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from ncjax import collapse, info
from ncjax.data import Split, modular_arithmetic
from ncjax.models import head_weights

# collapse_metrics keys -> the names logged by the grokking study.
_RENAME = {
    "info/mir": "collapse/mir",
    "info/hdr": "collapse/hdr",
    "info/mi": "collapse/mi",
    "info/entropy_head": "entropy/head",
    "info/entropy_means": "entropy/means",
}


def seed_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
  """Train and test splits of every seed, stacked: inputs (S, n, 3), labels (S, n).

  Seed i uses ``config.seed + i`` for its split, as a single run with that seed would.
  """
  splits = [modular_arithmetic(config.modulus, config.operation, config.train_fraction,
                               config.seed + i) for i in range(config.num_seeds)]
  stack = lambda parts: Split(*(np.stack(x) for x in zip(*parts)))
  return stack([s[0] for s in splits]), stack([s[1] for s in splits])


def create_state(
    config: ml_collections.ConfigDict, model: nn.Module, rng: jax.Array
) -> train_state.TrainState:
  """Initialised parameters and AdamW (config.lr, config.betas, config.weight_decay)."""
  params = model.init(rng, jnp.zeros((1, 3), jnp.int32))["params"]
  tx = optax.adamw(config.lr, b1=config.betas[0], b2=config.betas[1],
                   weight_decay=config.weight_decay)
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def create_states(config: ml_collections.ConfigDict, model: nn.Module) -> train_state.TrainState:
  """One TrainState with a leading seed axis (S = config.num_seeds); seed i is
  initialised from ``config.seed + i``."""
  keys = jnp.stack([jax.random.key(config.seed + i) for i in range(config.num_seeds)])
  return jax.vmap(lambda k: create_state(config, model, k))(keys)


def loss_and_accuracy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def make_train_step(batch_size: int | None):
  """A jitted ``step(state, train, seeds) -> (state, loss (S,))`` vmapped over seeds.

  ``state`` and ``train`` (a Split of (S, n, ...) arrays) carry a leading seed axis,
  ``seeds`` is (S,) int. Full batch when ``batch_size`` is None, else a batch drawn from
  (seed, state.step) alone, so a resumed run sees exactly the same data order.
  ``state`` is donated.
  """

  def step(state: train_state.TrainState, train: Split, seed: jax.Array):
    x, y = train
    n = y.shape[0]
    if batch_size is not None and batch_size < n:
      key = jax.random.fold_in(jax.random.key(seed), state.step)
      idx = jax.random.permutation(key, n)[:batch_size]
      x, y = x[idx], y[idx]

    def loss_fn(params):
      logits, _ = state.apply_fn({"params": params}, x)
      return loss_and_accuracy(logits, y)[0]

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss

  return jax.jit(jax.vmap(step), donate_argnums=0)


def metrics(apply_fn, params, train: Split, test: Split, num_classes: int, sample_size: int):
  """The logged metrics of one model, as a dict of scalars computed on device.

  Keys: ``train/loss, train/accuracy, test/loss, test/accuracy``; the collapse metrics
  of the train features (``collapse/nc1, collapse/vci, ...``) with the head-vs-means
  information metrics ``collapse/mir, collapse/hdr, collapse/mi, entropy/head,
  entropy/means``; and the sample-level ``sample/mir, sample/hdr, entropy/features``
  between features z_i and head rows w_{y_i} on the first ``sample_size`` train samples
  (the split is already shuffled).
  """
  out = {}
  for name, (x, y) in (("train", train), ("test", test)):
    logits, features = apply_fn({"params": params}, x)
    out[f"{name}/loss"], out[f"{name}/accuracy"] = loss_and_accuracy(logits, y)
    if name == "train":
      train_features = features
  w, b = head_weights(params)
  y = train.labels
  for key, value in collapse.collapse_metrics(train_features, y, num_classes, w, b).items():
    out[_RENAME.get(key, key.replace("nc/", "collapse/"))] = value
  z, wy = train_features[:sample_size], w[y[:sample_size]]
  alive = jnp.any(z != 0, axis=1)  # a sample whose ReLU features all vanish has no direction
  h_z, h_w, h_joint = info.entropies(z, wy, mask=alive)
  out["sample/mir"] = info.mir_from_entropies(h_z, h_w, h_joint)
  out["sample/hdr"] = info.hdr_from_entropies(h_z, h_w)
  out["entropy/features"] = h_z
  return out


def make_metrics_fn(apply_fn, num_classes: int, sample_size: int):
  """A jitted ``metrics(params, train, test) -> dict of (S,)`` vmapped over seeds (see
  :func:`metrics`); only these scalars need to leave the device."""
  fn = functools.partial(metrics, apply_fn, num_classes=num_classes, sample_size=sample_size)
  return jax.jit(jax.vmap(fn))
