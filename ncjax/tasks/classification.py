"""Image classification: TFDS (or digits, synthetic) through Grain, models with BatchNorm.

Each member of the state (seed i, ``config.seed + i``, for each swept value) initialises
from its seed (or ``config.init_seed``) and draws its own batch order from a Grain
pipeline seeded by its seed; the pipelines' positions are saved in every checkpoint.
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
from ncjax.train.config import member_seeds
from ncjax.train.evaluate import make_evaluator


class _Stream:
  """One Grain iterator per distinct seed; each member's batch (its seed's) stacked along
  a leading member axis (the members of a sweep share their seed's data order)."""

  def __init__(self, datasets, members: list[int], data_state: list | None):
    self.iterators = [iter(ds.to_iter_dataset()) for ds in datasets]
    self.members = members  # member -> index of its iterator
    if data_state is not None:
      for it, position in zip(self.iterators, data_state, strict=True):
        it.set_state(position)

  def __next__(self) -> Batch:
    batches = [next(it) for it in self.iterators]
    return jax.device_put(Batch(*(np.stack([x[i] for i in self.members])
                                  for x in zip(*batches))))

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
    self._evaluate = make_evaluator(self.num_classes, data_axis=None,
                                    layers=config.layer_metrics)
    seeds = member_seeds(config)
    distinct = sorted(set(seeds))
    self._members = [distinct.index(seed) for seed in seeds]
    self._datasets = [images.train_dataset(self.data, batch_size=config.batch_size,
                                           seed=seed, augment=config.data.augment)
                      for seed in distinct]
    # The fixed train subset of the sample-level metrics: read once, kept on device.
    self._sample = jax.device_put(next(images.eval_batches(
        self.data, "train", config.sample_size, limit=config.sample_size)))

  def train_stream(self, data_state: list | None) -> _Stream:
    return _Stream(self._datasets, self._members, data_state)

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
