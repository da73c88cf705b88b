"""Tasks: what the trainer trains on. One module per task, named by ``config.task``.

    task = ncjax.tasks.make_task(config)     # the config checked, data loaded, model built
    records = ncjax.train.train(task, workdir)

A task is any class with the shape of :class:`Task`. Adding one is a new module here and
a line in :data:`TASKS`; its config keys sit in ``ncjax.train.config.base_config`` and it
checks its own branch of them (:meth:`Task.validate_config`). The loss is the same for
every task (``config.loss``, see ``ncjax.train.state.make_loss``).
"""

from __future__ import annotations

from typing import Protocol

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from ncjax.data import Batch
from ncjax.models import NNXModel
from ncjax.tasks.classification import Classification
from ncjax.tasks.grokking import Grokking
from ncjax.train import config as config_lib
from ncjax.train import meshes


class Task(Protocol):
  """What the trainer, the evaluator and ``ncjax analyze`` need of a task.

  Attributes:
    config: the run's config.
    num_classes: C.
    mesh: the device mesh its data live on (:mod:`ncjax.train.meshes`).
    model: a Flax linen module (or an adapted NNX one) returning ``(logits (n, C),
      features (n, d))``.
    example_inputs: (1, ...) inputs for initialisation.
  """

  config: ml_collections.ConfigDict
  num_classes: int
  mesh: Mesh
  model: nn.Module | NNXModel
  example_inputs: jax.Array

  def __init__(self, config: ml_collections.ConfigDict) -> None:
    """Loads the data and builds the model of a validated ``config``."""

  @staticmethod
  def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first key of the task's branch with a bad value."""

  def train_batch(self, step: int) -> Batch:
    """Step ``step``'s batch of every member, (M, B, ...) over members x samples."""

  def train_stream(self, step: int) -> meshes.Prefetch:
    """Training batches from ``step`` on: the data position is the step."""

  chunk_limit: int | None
  """Steps per call of the chunked train program (None: any; 1: one step per call)."""

  def train_feed(self, step: int) -> meshes.Prefetch:
    """Each call's data for the chunked train program from ``step`` on
    (``ncjax.train.state.make_train_chunk``)."""

  def draw_batch(self, data, t: jax.Array) -> Batch:
    """Step ``t``'s batch (traced) from one item of :meth:`train_feed`."""

  def evaluate(self, states, seed_index: np.ndarray | None = None) -> dict:
    """The logged metrics (:mod:`ncjax.keys`) of ``states`` (leading axis), (S,) each."""

  def examples(self, split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels) of ``split``, its first ``limit`` examples (host)."""


# config.task -> the task's class.
TASKS: dict[str, type[Task]] = {"grokking": Grokking, "classification": Classification}


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the whole config: the trainer's keys, then the task's own branch."""
  config_lib.validate(config)
  config_lib.require(config, config.task in TASKS, "task", f"one of {sorted(TASKS)}")
  TASKS[config.task].validate_config(config)


def make_task(config: ml_collections.ConfigDict) -> Task:
  """The task named by ``config.task`` (the config validated, its data loaded, its model
  built)."""
  validate(config)
  return TASKS[config.task](config)
