"""Pruning: each run's network pruned by global magnitude, before and after a fine-tune.

For every run, member 0's final network pruned at each of ``sparsities``, measured as
pruned and after ``finetune`` (overrides of the run's config for a short fine-tune,
pruned weights held at 0); all sparsities one vmapped state, measured by the trainer's
own evaluator (:mod:`ncjax.analysis.points`); ``pruning.jsonl``, ``pruning.png``.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from ncjax import keys, plots
from ncjax.analysis import points
from ncjax.tasks import make_task
from ncjax.tasks import validate as validate_config
from ncjax.train import rundir
from ncjax.train.state import make_loss, make_optimizer


def _finetune_config(study: ml_collections.ConfigDict,
                     config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run's config for one network, no warm-up, updated by ``study.finetune``."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.num_seeds, c.sweep_key, c.sweep_values, c.optim.warmup_steps = 1, "", (), 0
  c.update(study.get("finetune", {}))
  return c


def validate(study: ml_collections.ConfigDict, order: list[str]) -> None:
  """``sparsities`` in [0, 1) and a valid fine-tune config."""
  points.check_sparsities(study.get("sparsities", ()))
  validate_config(_finetune_config(study, study.runs[order[0]]))


def run(study: ml_collections.ConfigDict, order: list[str], logs: dict[str, list],
        workdir: str) -> dict:
  """The metrics of each run's network pruned to each sparsity, before and after a short
  fine-tune; rows also in ``pruning.jsonl``."""
  sparsities = np.asarray(study.sparsities, float)
  rows = []
  for name in order:
    task = make_task(study.runs[name])
    params, batch_stats = points.final_weights(os.path.join(workdir, name), [0])
    params, masks = points.magnitude_prune(jax.tree.map(lambda x: x[0], params), sparsities)
    batch_stats = jax.tree.map(lambda x: np.repeat(x, len(sparsities), 0), batch_stats)
    tune = _finetune_config(study, task.config)
    states = points.states_at(params, batch_stats, task.model, make_optimizer(tune))
    rows += points.measure(task, states, f"{name} pruned", "sparsity", sparsities)
    tune_task = make_task(tune)
    tuned = points.finetune(states, masks, tune_task.train_stream(0), make_loss(tune),
                            tune.steps, tune_task.mesh)
    rows += points.measure(task, tuned, f"{name} + {tune.steps} fine-tune steps", "sparsity",
                           sparsities)
  rundir.write_jsonl(os.path.join(workdir, "pruning.jsonl"), rows)
  return {"rows": rows}


def summarise(summary: dict) -> list[str]:
  """One line per network and sparsity."""
  mir, hdr, nc1 = (keys.key(keys.COLLAPSE, name) for name in ("mir", "hdr", "nc1"))
  return [f"{r['run']:>36} sparsity {r['sparsity']:.2f}: test acc "
          f"{100 * r[keys.TEST_ACCURACY]:6.2f}%, MIR {r[mir]:.3f}, HDR {r[hdr]:.3f}, "
          f"NC1 {r[nc1]:.4f}" for r in summary["rows"]]


def figure(study: ml_collections.ConfigDict, summary: dict, logs: dict[str, list],
           workdir: str) -> None:
  """``pruning.png``: :data:`ncjax.keys.POINTS` against sparsity, one line per network."""
  plots.points(summary["rows"], "sparsity", keys.POINTS, os.path.join(workdir, "pruning.png"),
               title=study.get("name", ""))
