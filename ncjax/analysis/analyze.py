"""``ncjax analyze DIR``: recompute metrics over every snapshot a training run saved."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from ncjax.analysis import plots, trajectory
from ncjax.models import head_weights, make_model
from ncjax.train import checkpoints
from ncjax.train.loop import json_record
from ncjax.train.steps import create_states, metrics, seed_splits


def _snapshot_function(config, apply_fn, metric_names: Sequence[str] | None, split: str):
  """``fn((params, seed_index)) -> dict``: the logged metrics when ``metric_names`` is
  None, else the named ncjax metrics on the features of ``split``."""
  train, test = jax.tree.map(jax.numpy.asarray, seed_splits(config))  # (S, n, ...)
  data = {"train": train, "test": test}

  def fn(args):
    params, i = args
    at = lambda s: jax.tree.map(lambda x: x[i], s)
    if metric_names is None:
      return metrics(apply_fn, params, at(train), at(test), config.modulus, config.sample_size)
    x, y = at(data[split])

    def features_fn(p):
      _, features = apply_fn({"params": p}, x)
      return features, *head_weights(p)

    return trajectory.metric_function(metric_names, features_fn, y, config.modulus)(params)

  return fn


def analyze(workdir: str, metric_names: Sequence[str] | None = None, split: str = "train",
            chunk_size: int = 16) -> list[dict]:
  """Evaluates metrics on every checkpoint under ``workdir``, vmapped over snapshots
  (and seeds); writes ``analysis.jsonl`` and ``analysis.png``; returns the records.

  Args:
    metric_names: names of ncjax API functions (see
      :func:`ncjax.analysis.trajectory.metric_function`), or None for exactly the metrics
      training logs (``metrics.jsonl``'s keys, on train and test).
    split: the samples whose features the named metrics see, ``train`` or ``test``.
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  model = make_model(config)
  fn = _snapshot_function(config, model.apply, metric_names, split)  # validates names early
  steps, params = checkpoints.restore_all_params(
      workdir, jax.eval_shape(lambda: create_states(config, model)))
  seeds = config.num_seeds
  flat = jax.tree.map(lambda *xs: np.concatenate(xs), *params)  # (T * S, ...)
  seed_index = np.tile(np.arange(seeds), len(steps))
  values = trajectory.evaluate(fn, (flat, seed_index), chunk_size)
  values = {k: v.reshape(len(steps), seeds) for k, v in values.items()}
  records = [json_record(step, {k: v[t] for k, v in values.items()}, seeds)
             for t, step in enumerate(steps)]
  with open(os.path.join(workdir, "analysis.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  plots.grid(records, os.path.join(workdir, "analysis.png"), title=f"{workdir} ({split})")
  return records
