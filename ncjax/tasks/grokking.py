"""Grokking: the algorithmic tasks of Power et al. 2022 (modular arithmetic, polynomials,
S5), every split on device.

Each member of the state (seed i, ``config.seed + i``, for each swept value) has its
seed's own train/test split, (M, n, ...) over the mesh's members x samples axes (rows padded
to a multiple of the samples axis, masked). Full batch when ``batch_size`` is None, else
batch t is drawn from (seed, t) alone, so the data position is the step and a resumed
run is exact on any number of devices.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ncjax import keys, progress
from ncjax.data import GROUPS, OPERATIONS, Batch, Split, algorithmic, num_classes
from ncjax.models import make_model
from ncjax.train import meshes
from ncjax.train.config import member_seeds, require
from ncjax.train.evaluate import make_evaluator
from ncjax.train.state import variables


def seed_splits(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
  """Train and test splits of every member (its seed), stacked: inputs (M, n, 3), labels
  (M, n)."""
  d = config.data
  splits = [algorithmic(d.operation, d.modulus, d.train_fraction, seed)
            for seed in member_seeds(config)]
  stack = lambda parts: Split(*(np.stack(x) for x in zip(*parts, strict=True)))
  return stack([s[0] for s in splits]), stack([s[1] for s in splits])


def _batch(split: Split, rows: int) -> Batch:
  """The split as a Batch of ``rows`` >= n rows (zero padding, masked out)."""
  pad = [(0, 0), (0, rows - split.labels.shape[-1])]
  return Batch(np.pad(split.inputs, pad + [(0, 0)]), np.pad(split.labels, pad),
               np.pad(np.ones(split.labels.shape, bool), pad))


def _train_pairs(train: Split, p: int) -> np.ndarray:
  """(S, p * p) bool: pair (a, b), row a * p + b, is in seed s's train split."""
  mask = np.zeros((len(train.inputs), p * p), bool)
  for s, inputs in enumerate(train.inputs):
    mask[s, inputs[:, 0] * p + inputs[:, 1]] = True
  return mask


def _row_drawer(n: int, batch: int | None):
  """``draw(rows, seeds, t)`` (traceable): each member's ``batch`` rows of its ``n``,
  permuted by (seed, t)."""

  @functools.partial(jax.vmap, in_axes=(0, 0, None))
  def draw(rows, seed, t):
    idx = jax.random.permutation(jax.random.fold_in(jax.random.key(seed), t), n)[:batch]
    return jax.tree.map(lambda x: x[idx], rows)

  return draw


def _fourier_pass(mesh, p: int, num_frequencies: int):
  """``fourier(states, train_pairs)``: the Fourier progress measures of every member over
  all p * p pairs (``train_pairs`` (M, p * p) bool), replicated."""
  a, b = np.divmod(np.arange(p * p), p)
  pairs = jnp.asarray(np.stack([a, b, np.full_like(a, p)], 1), jnp.int32)

  @functools.partial(meshes.serialized, mesh=mesh)
  @functools.partial(jax.jit, out_shardings=meshes.replicated(mesh))
  @jax.vmap
  def fourier(state, train_mask):
    logits, _ = state.apply_fn(variables(state), pairs, train=False)
    return keys.keyed(keys.FOURIER, progress.fourier_losses(logits, train_mask,
                                                            num_frequencies=num_frequencies))

  return fourier


class Grokking:
  """The grokking task. Besides the shared metrics, for ``add`` it logs the Fourier
  progress measures (``fourier/restricted_loss``, ``fourier/excluded_loss``,
  ``fourier/key_fraction``; :func:`ncjax.progress.fourier_losses`) over all p * p pairs."""

  @staticmethod
  def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks ``config.data``'s grokking keys."""
    need, d = functools.partial(require, config), config.data
    need(d.modulus >= 2, "data.modulus", ">= 2")
    need(d.operation in (*OPERATIONS, *GROUPS), "data.operation",
         f"one of {sorted([*OPERATIONS, *GROUPS])}")
    need(d.operation != "add" or 1 <= d.key_frequencies <= d.modulus // 2,
         "data.key_frequencies", "in [1, modulus // 2]")
    need(0 < d.train_fraction < 1, "data.train_fraction", "in (0, 1)")

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.num_classes = c = num_classes(config.data.operation, config.data.modulus)
    self.model = make_model(config.model.name, c, config.model.dtype, vocab_size=c + 1,
                            **config.model.kwargs.to_dict())
    self.example_inputs = jnp.zeros((1, 3), jnp.int32)
    self.mesh = mesh = meshes.make_mesh(config)
    train, test = self._splits = seed_splits(config)
    n = train.labels.shape[-1]
    self.full_batch = config.batch_size is None or config.batch_size >= n
    if not self.full_batch and config.batch_size % meshes.data_size(mesh):
      raise ValueError(f"config.batch_size = {config.batch_size} must be a multiple of the "
                       f"{meshes.data_size(mesh)} devices of the mesh's samples axis "
                       "(config.mesh.data).")
    on_mesh = lambda split: meshes.put(
        _batch(split, meshes.padded_size(split.labels.shape[-1], mesh)),
        meshes.batch_sharding(mesh))
    self.train, self.test = on_mesh(train), on_mesh(test)
    members = meshes.members_sharding(mesh)
    self._seeds = meshes.put(np.asarray(member_seeds(config), np.uint32), members)
    self._rows = _row_drawer(n, config.batch_size)  # traced (in the chunked train program)
    self._draw = meshes.serialized(
        jax.jit(self._rows, out_shardings=meshes.batch_sharding(mesh)), mesh)
    self._pick = meshes.serialized(jax.jit(  # each state's own seed's splits
        lambda data, index: jax.tree.map(lambda x: x[index], data)), mesh)
    self._sample = meshes.serialized(jax.jit(  # the first rows (padding masked)
        lambda b: jax.tree.map(lambda x: x[:, :config.sample_size], b)), mesh)
    self._evaluate = make_evaluator(c, mesh, data_axis=0)
    self._fourier = self._train_pairs = None
    if config.data.operation == "add":
      self._fourier = _fourier_pass(mesh, c, config.data.key_frequencies)
      self._train_pairs = meshes.put(_train_pairs(train, c), members)

  def train_batch(self, step: int) -> Batch:
    """Step ``step``'s batch of every member: the whole split, or ``batch_size`` rows
    drawn from (seed, step)."""
    return self.train if self.full_batch else self._draw(self.train, self._seeds, step)

  def train_stream(self, step: int) -> meshes.Prefetch:
    """Training batches from step ``step`` on (drawn on device: no prefetch thread)."""
    return meshes.Prefetch(self.train_batch, step, 0)

  chunk_limit: int | None = None  # steps per call of the chunked train program: any (drawn on device)

  def train_feed(self, step: int) -> meshes.Prefetch:
    """The data of each call of the chunked train program from step ``step`` on (see
    :meth:`draw_batch`): every call, the train split (M, n, ...) and the seeds (M,)."""
    return meshes.Prefetch(lambda _: (self.train, self._seeds), step, 0)

  def draw_batch(self, data: tuple[Batch, jax.Array], t: jax.Array) -> Batch:
    """Step ``t``'s batch (traced) from :meth:`train_feed`'s data: :meth:`train_batch`."""
    train, seeds = data
    return train if self.full_batch else self._rows(train, seeds, t)

  def examples(self, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of seed 0's ``split``, its first ``limit`` examples (host)."""
    data = self._splits[{"train": 0, "test": 1}[split]]
    return data.inputs[0, :limit], data.labels[0, :limit]

  def evaluate(self, states, seed_index: np.ndarray | None = None) -> dict:
    """Metrics of ``states`` (leading axis); ``seed_index`` picks each state's split
    (default: state i has seed i's split)."""
    data = (self.train, self.test, self._train_pairs)
    train, test, pairs = data if seed_index is None else self._pick(data, seed_index)
    sample = self._sample(train)
    out = self._evaluate(states, {"train": lambda: [train], "test": lambda: [test]}, sample)
    if self._fourier is not None:
      out |= self._fourier(states, pairs)
    return out
