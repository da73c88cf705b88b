"""Image classification: TFDS (or digits, synthetic) through Grain, models with BatchNorm.

Seed i initialises from ``config.seed + i`` and draws its own batch order from a Grain
pipeline seeded the same way; the pipelines' positions are saved in every checkpoint.
Metrics are computed over the whole train and test splits (eval-mode features) by the
streamed evaluator, shared by all seeds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ncjax.data import Batch, images
from ncjax.models import make_model
from ncjax.train.evaluate import make_evaluator


class _Stream:
  """One Grain iterator per seed; batches stacked along a leading seed axis."""

  def __init__(self, datasets, data_state: list | None):
    self.iterators = [iter(ds.to_iter_dataset()) for ds in datasets]
    if data_state is not None:
      for it, position in zip(self.iterators, data_state, strict=True):
        it.set_state(position)

  def __next__(self) -> Batch:
    batches = [next(it) for it in self.iterators]
    return jax.device_put(Batch(*(np.stack(x) for x in zip(*batches))))

  def state(self) -> list:
    return [it.get_state() for it in self.iterators]


class Classification:

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.data = images.load(config.data.name, config.data.data_dir,
                            classes=config.data.classes,
                            train_per_class=config.data.train_per_class)
    self.num_classes = self.data.num_classes
    self.model = make_model(config.model.name, self.num_classes, **config.model.kwargs.to_dict())
    self.example_inputs = jnp.zeros((1, *self.data.shape), jnp.float32)
    self._evaluate = make_evaluator(self.num_classes, data_axis=None)
    self._datasets = [images.train_dataset(self.data, batch_size=config.batch_size,
                                           seed=config.seed + i, augment=config.data.augment)
                      for i in range(config.num_seeds)]
    # The fixed train subset of the sample-level metrics: read once, kept on device.
    self._sample = jax.device_put(next(images.eval_batches(
        self.data, "train", config.sample_size, limit=config.sample_size)))

  def train_stream(self, data_state: list | None) -> _Stream:
    return _Stream(self._datasets, data_state)

  def examples(self, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of ``split`` (normalised), its first ``limit`` examples."""
    batch = next(images.eval_batches(self.data, split, limit, limit=limit))
    return batch.inputs[batch.mask], batch.labels[batch.mask]

  def evaluate(self, states, seed_index: np.ndarray | None = None) -> dict:
    """Metrics of ``states`` (leading axis) on the shared splits (``seed_index`` unused:
    every seed sees the same splits)."""
    size = self.config.data.eval_batch_size
    splits = {split: (lambda split=split: images.eval_batches(self.data, split, size))
              for split in ("train", "test")}
    return self._evaluate(states, splits, self._sample)
