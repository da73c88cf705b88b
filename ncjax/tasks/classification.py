"""Image classification: TFDS (or digits, synthetic) through Grain, models with BatchNorm.

Each member of the state (seed i, ``config.seed + i``, for each swept value) initialises
from its seed (or ``config.init_seed``) and draws its own batch order from a Grain
stream seeded by its seed; the rows of step t's batch are a function of (seed, t) alone
(:func:`ncjax.data.images.train_elements`), so every process reads only the rows its
devices hold and the data position is the step. Metrics are computed over the whole
train and test splits (eval-mode features) by the streamed evaluator, shared by all
seeds, in padded batches split over the mesh's ``data`` axis.
"""

from __future__ import annotations

import concurrent.futures
import functools

import jax.numpy as jnp
import ml_collections
import numpy as np

from ncjax.data import Batch, images
from ncjax.models import make_model
from ncjax.train import meshes
from ncjax.train.config import member_seeds, require
from ncjax.train.evaluate import make_evaluator


class Classification:
  """Image classification (module docstring); ``config.data.name`` picks the dataset."""

  @staticmethod
  def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks the batch size and ``config.data``'s image keys."""
    need, d = functools.partial(require, config), config.data
    need(config.batch_size is not None, "batch_size", "set for classification")
    need(d.eval_batch_size >= 1, "data.eval_batch_size", ">= 1")
    need(d.classes is None or (len(d.classes) >= 2 and len(set(d.classes)) == len(d.classes)
                               and all(isinstance(c, int) and c >= 0 for c in d.classes)),
         "data.classes", "None or >= 2 distinct labels")
    need(d.train_per_class is None or d.train_per_class >= 1, "data.train_per_class",
         "None or >= 1")

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.mesh = meshes.make_mesh(config)
    self.data = images.load(config.data.name, config.data.data_dir,
                            idx_dir=config.data.idx_dir, classes=config.data.classes,
                            train_per_class=config.data.train_per_class)
    if config.batch_size > len(self.data.train):
      raise ValueError(f"config.batch_size = {config.batch_size} exceeds the "
                       f"{len(self.data.train)} training examples.")
    if config.batch_size % meshes.data_size(self.mesh):
      raise ValueError(f"config.batch_size = {config.batch_size} must be a multiple of the "
                       f"{meshes.data_size(self.mesh)} devices of the mesh's samples axis "
                       "(config.mesh.data).")
    self.num_classes = self.data.num_classes
    self.model = make_model(config.model.name, self.num_classes, config.model.dtype,
                            **config.model.kwargs.to_dict())
    self.example_inputs = jnp.zeros((1, *self.data.shape), jnp.float32)
    self._evaluate = make_evaluator(self.num_classes, self.mesh, data_axis=None,
                                    layers=config.layer_metrics)
    seeds = member_seeds(config)
    self._elements = {seed: images.train_elements(self.data, seed=seed,
                                                  augment=config.data.augment)
                      for seed in sorted(set(seeds))}
    self._seeds = seeds
    self._pool = concurrent.futures.ThreadPoolExecutor(config.data.read_threads,
                                                       thread_name_prefix="ncjax-read")
    self._eval_size = meshes.padded_size(config.data.eval_batch_size, self.mesh)
    # The fixed train subset of the sample-level metrics: read once, kept on device.
    sample = np.arange(meshes.padded_size(config.sample_size, self.mesh))
    self._sample = self._rows("train", sample, min(config.sample_size, len(self.data.train)))

  def _rows(self, split: str, indices: np.ndarray, n: int | None = None) -> Batch:
    """Rows ``indices`` of ``split`` as a Batch split over the samples axis (each process
    reads its own rows)."""
    return meshes.assemble(meshes.shared_sharding(self.mesh), (len(indices),),
                           lambda index: images.split_rows(self.data, split, indices[index], n))

  def train_batch(self, step: int) -> Batch:
    """Step ``step``'s batches of every member, (M, B, ...) over members x samples."""
    size = self.config.batch_size

    def load(index):
      members, rows = index
      parts = [images.train_rows(self.data, self._elements[seed], size, step, rows, self._pool)
               for seed in self._seeds[members]]
      return Batch(*(np.stack(x) for x in zip(*parts, strict=True)))

    return meshes.assemble(meshes.batch_sharding(self.mesh), (len(self._seeds), size), load)

  def train_stream(self, step: int) -> meshes.Prefetch:
    """Training batches from step ``step`` on, built ahead on a background thread."""
    return meshes.Prefetch(self.train_batch, step, self.config.data.prefetch)

  chunk_limit: int | None = 1  # steps per call of the chunked train program: the batches come from the host

  def train_feed(self, step: int) -> meshes.Prefetch:
    """The data of each (one-step) call of the chunked train program from step ``step``
    on: its batches (:meth:`train_stream`)."""
    return self.train_stream(step)

  @staticmethod
  def draw_batch(data: Batch, t) -> Batch:
    """Step ``t``'s batches from :meth:`train_feed`'s data (theirs)."""
    return data

  def examples(self, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of ``split`` (normalised), its first ``limit`` examples (host)."""
    batch = next(images.eval_batches(self.data, split, limit, limit=limit))
    return batch.inputs[batch.mask], batch.labels[batch.mask]

  def evaluate(self, states, seed_index: np.ndarray | None = None) -> dict:
    """Metrics of ``states`` (leading axis, on the mesh) on the shared splits
    (``seed_index`` unused: every seed sees the same splits)."""
    size = self._eval_size

    def batches(split):
      n = len({"train": self.data.train, "test": self.data.test}[split])
      return (self._rows(split, np.arange(start, start + size), n) for start in range(0, n, size))

    splits = {split: (lambda split=split: batches(split)) for split in ("train", "test")}
    return self._evaluate(states, splits, self._sample)
