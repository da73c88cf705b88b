"""A training run for notebooks: its config, logged metrics and checkpointed parameters.

    run = ncjax.analysis.load_run("runs/grok")
    steps, test_acc = run.metric("test/accuracy")        # (T,), (T, S)
    for steps, params in run.params(chunk_size=8):        # lazily, chunk by chunk
        ...                                               # leaves (K, S, ...)
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np

from ncjax.train import checkpoints, rundir
from ncjax.train.config import member_seeds


@dataclasses.dataclass(frozen=True)
class Run:
  """``records``: metrics.jsonl, one dict per logged step (values of shape (S,) for S
  seeds); ``checkpoint_steps``: steps with a checkpoint (snapshots and resume points)."""

  workdir: str
  config: ml_collections.ConfigDict
  records: list[dict]
  checkpoint_steps: list[int]

  def metric(self, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Logged steps (T,) and values (T, S) of ``key`` (e.g. ``collapse/mir``).

    Raises:
      KeyError: ``key`` is not logged by this run (the message lists what is).
    """
    rows = [r for r in self.records if key in r]
    if not rows:
      logged = sorted({k for r in self.records for k in r} - {"step"})
      raise KeyError(f"{key!r} is not in {self.workdir}/metrics.jsonl; logged: {logged}")
    values = np.stack([np.atleast_1d(np.asarray(r[key], float)) for r in rows])
    return np.asarray([r["step"] for r in rows]), values

  @functools.cached_property
  def task(self):
    """The run's task rebuilt from its config (data loaded, model built)."""
    from ncjax.tasks import make_task

    return make_task(self.config)

  def params(self, chunk_size: int = 16) -> Iterator[tuple[list[int], dict]]:
    """Yields (steps (K,), params with leaves (K, S, ...)) for chunks of at most
    ``chunk_size`` intact checkpoints, restored only when the chunk is reached (host
    arrays; a corrupt checkpoint is named on stderr and skipped)."""
    from ncjax.train.state import abstract_states

    if not (isinstance(chunk_size, int) and chunk_size >= 1):
      raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}.")
    task, seeds = self.task, len(member_seeds(self.config))
    like = abstract_states(self.config, task.model, task.example_inputs, task.mesh)
    for steps, states in checkpoints.restore_chunks(self.workdir, like, chunk_size):
      lead = (len(steps), seeds)
      yield steps, jax.tree.map(lambda x, lead=lead: x.reshape(*lead, *x.shape[1:]),
                                states.params)


def load_run(workdir: str) -> Run:
  """The run in ``workdir`` (finished, interrupted or still running).

  Raises:
    FileNotFoundError: ``workdir`` is not an ncjax run directory.
  """
  config = rundir.load_config(workdir)
  records = rundir.read_log(os.path.join(workdir, "metrics.jsonl"))
  return Run(workdir, config, records, checkpoints.saved_steps(workdir))
