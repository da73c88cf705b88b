"""Grokking: the algorithmic tasks of Power et al. 2022 (modular arithmetic, polynomials,
S5), every split on device.

Each member of the state (seed i, ``config.seed + i``, for each swept value) has its
seed's own train/test split. Full batch when
``batch_size`` is None, else batch t is drawn from (seed, t) alone, so the data order
needs no saved position and a resumed run is exact.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ncjax import progress
from ncjax.data import Batch, Split, algorithmic, num_classes
from ncjax.models import make_model
from ncjax.train.config import member_seeds
from ncjax.train.evaluate import keyed, make_evaluator
from ncjax.train.state import variables


def seed_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
  """Train and test splits of every member (its seed), stacked: inputs (M, n, 3), labels
  (M, n)."""
  d = config.data
  splits = [algorithmic(d.operation, d.modulus, d.train_fraction, seed)
            for seed in member_seeds(config)]
  stack = lambda parts: Split(*(np.stack(x) for x in zip(*parts)))
  return stack([s[0] for s in splits]), stack([s[1] for s in splits])


def _batch(split: Split) -> Batch:
  return Batch(split.inputs, split.labels, jnp.ones(split.labels.shape, bool))


class _Stream:
  """Batch t of every seed: the whole split, or ``batch_size`` rows drawn from (seed, t)."""

  def __init__(self, train: Batch, seeds: jax.Array, batch_size: int | None, step: int):
    self.train, self.seeds, self.step = train, seeds, step
    n = train.labels.shape[-1]
    self.full = batch_size is None or batch_size >= n

    @jax.jit
    @functools.partial(jax.vmap, in_axes=(0, 0, None))
    def draw(batch, seed, t):
      idx = jax.random.permutation(jax.random.fold_in(jax.random.key(seed), t), n)[:batch_size]
      return jax.tree.map(lambda x: x[idx], batch)

    self._draw = draw

  def __next__(self) -> Batch:
    batch = self.train if self.full else self._draw(self.train, self.seeds, self.step)
    self.step += 1
    return batch

  def state(self) -> dict:
    return {"step": self.step}


def _train_pairs(train: Split, p: int) -> np.ndarray:
  """(S, p * p) bool: pair (a, b), row a * p + b, is in seed s's train split."""
  mask = np.zeros((len(train.inputs), p * p), bool)
  for s, inputs in enumerate(train.inputs):
    mask[s, inputs[:, 0] * p + inputs[:, 1]] = True
  return mask


class Grokking:
  """The grokking task. Besides the shared metrics, for ``add`` it logs the Fourier
  progress measures (``fourier/restricted_loss``, ``fourier/excluded_loss``,
  ``fourier/key_fraction``; :func:`ncjax.progress.fourier_losses`) over all p * p pairs."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    c = num_classes(config.data.operation, config.data.modulus)
    self.num_classes = c
    self.model = make_model(config.model.name, c, vocab_size=c + 1,
                            **config.model.kwargs.to_dict())
    self.example_inputs = jnp.zeros((1, 3), jnp.int32)
    train, test = seed_splits(config)
    self.train, self.test = jax.device_put((_batch(train), _batch(test)))
    self._evaluate = make_evaluator(c, data_axis=0)
    self._fourier = None
    if config.data.operation == "add":
      a, b = np.divmod(np.arange(c * c), c)
      pairs = jnp.asarray(np.stack([a, b, np.full_like(a, c)], 1), jnp.int32)
      k = config.data.key_frequencies

      @jax.jit
      @jax.vmap
      def fourier(state, train_mask):
        logits, _ = state.apply_fn(variables(state), pairs, train=False)
        return keyed("fourier", progress.fourier_losses(logits, train_mask, num_frequencies=k))

      self._fourier = fourier
      self._train_pairs = jax.device_put(_train_pairs(train, c))

  def train_stream(self, data_state: dict | None) -> _Stream:
    seeds = jnp.asarray(member_seeds(self.config))
    step = 0 if data_state is None else data_state["step"]
    return _Stream(self.train, seeds, self.config.batch_size, step)

  def examples(self, split: str, limit: int) -> tuple[jax.Array, jax.Array]:
    """(inputs, labels) of seed 0's ``split``, its first ``limit`` examples."""
    data = {"train": self.train, "test": self.test}[split]
    return data.inputs[0, :limit], data.labels[0, :limit]

  def evaluate(self, states, seed_index: np.ndarray | None = None) -> dict:
    """Metrics of ``states`` (leading axis); ``seed_index`` picks each state's split
    (default: state i has seed i's split)."""
    pick = (lambda b: b) if seed_index is None else (
        lambda b: jax.tree.map(lambda x: x[seed_index], b))
    train, test = pick(self.train), pick(self.test)
    sample = jax.tree.map(lambda x: x[:, :self.config.sample_size], train)
    out = self._evaluate(states, {"train": lambda: [train], "test": lambda: [test]}, sample)
    if self._fourier is not None:
      out |= self._fourier(states, pick(self._train_pairs))
    return out
