"""``ncjax analyze DIR``: recompute metrics over every snapshot a training run saved.

Snapshots are restored ``chunk_size`` at a time (a WRN-28-8 has 36M parameters: never
all at once), each checked against its checksum; a corrupt one is named on stderr and
skipped. Works for every task: the run's config.json rebuilds its task.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np

from ncjax import keys, plots
from ncjax.analysis import trajectory
from ncjax.models import head_weights
from ncjax.tasks import make_task
from ncjax.train import checkpoints, meshes, rundir
from ncjax.train.config import base_config, member_seeds
from ncjax.train.loop import json_record
from ncjax.train.state import abstract_states, variables
from ncjax.train.watchdog import Watchdog


def _named_metrics(task, names: Sequence[str], split: str, max_samples: int):
  """``fn(state) -> dict``: the named :data:`trajectory.METRICS` on the eval-mode features
  of ``split`` (its first ``max_samples`` examples; seed 0's split for grokking)."""
  inputs, labels = task.examples(split, max_samples)

  def features_fn(state):
    _, features = state.apply_fn(variables(state), inputs, train=False)
    return features, *head_weights(state.params)

  return trajectory.metric_function(names, features_fn, labels, task.num_classes)


def analyze(workdir: str, metric_names: Sequence[str] | None = None, split: str = "train",
            chunk_size: int = 16, max_samples: int = 10_000) -> list[dict]:
  """Evaluates metrics on every intact checkpoint under ``workdir``; writes
  ``analysis.jsonl`` and ``analysis.png`` (the metrics training logs, keys naming their
  split) or, for named metrics, ``analysis.<split>.jsonl`` and ``analysis.<split>.png``
  (keys ``<split>/<name>``; another split's files are left alone); returns the records.

  Args:
    metric_names: names in :data:`ncjax.analysis.trajectory.METRICS`, or None for exactly
      the metrics training logs (whole train and test splits).
    split: the samples whose features the named metrics see, ``train`` or ``test``.
    max_samples: named metrics of image tasks use the split's first examples only.
  """
  if split not in keys.SPLITS:
    raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
  config = rundir.load_config(workdir)
  task = make_task(config)
  seeds = len(member_seeds(config))
  if metric_names is None:
    evaluate = task.evaluate
  else:
    named = jax.jit(jax.vmap(_named_metrics(task, metric_names, split, max_samples)))
    def evaluate(states, seed_index=None) -> dict:  # every state's own seed: vmapped
      return keys.keyed(split, named(states))
  like = abstract_states(config, task.model, task.example_inputs, task.mesh)
  records = []
  seed_index = np.tile(np.arange(seeds), chunk_size)
  defaults = base_config()  # a run directory older than the watchdog keys has none
  dog = Watchdog(workdir, floor=config.get("watchdog_floor", defaults.watchdog_floor),
                 multiple=config.get("watchdog_multiple", defaults.watchdog_multiple))
  with dog:
    for steps, states in checkpoints.restore_chunks(workdir, like, chunk_size, pad=True):
      with dog.phase("analysis", steps[0]):
        states = meshes.put(states, meshes.members_sharding(task.mesh))
        values = meshes.fetch(evaluate(states, seed_index))
      for t, step in enumerate(steps):
        records.append(json_record(step, {k: np.asarray(v)[t * seeds:(t + 1) * seeds]
                                          for k, v in values.items()}, seeds))
  if not records:
    raise ValueError(f"no intact checkpoint under {workdir}/checkpoints.")
  if meshes.is_writer():
    stem = os.path.join(workdir, "analysis" if metric_names is None else f"analysis.{split}")
    rundir.write_jsonl(f"{stem}.jsonl", records)
    plots.families(records, f"{stem}.png", title=str(workdir))
  return records
