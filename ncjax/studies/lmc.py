"""Linear mode connectivity: the metrics along the line between two trained networks.

For every run (two or more members, e.g. two seeds or ``init_seed`` shared), every logged
metric at the ``alphas`` points of the straight line from member 0's final parameters to
member 1's, BatchNorm statistics recomputed at each point (:mod:`ncjax.analysis.points`:
all points one vmapped state, measured by the trainer's own evaluator); ``lmc.jsonl``,
the loss barriers and the test-accuracy drop in ``summary.json``, ``lmc.png``.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

from ncjax import keys, plots
from ncjax.analysis import points
from ncjax.tasks import make_task
from ncjax.train import rundir
from ncjax.train.config import member_seeds
from ncjax.train.state import make_optimizer

ROWS = "lmc.jsonl"


def validate(study: ml_collections.ConfigDict, order: list[str]) -> None:
  """``alphas`` lists >= 2 points and every run has two members."""
  alphas = np.asarray(study.get("alphas", ()), float)
  if alphas.ndim != 1 or alphas.size < 2:
    raise ValueError(f"lmc: alphas must list >= 2 points, got {study.get('alphas')!r}.")
  few = [n for n in order if len(member_seeds(study.runs[n])) < 2]
  if few:
    raise ValueError(f"lmc: runs {few} have one member; interpolation needs two "
                     "(num_seeds = 2).")


def run(study: ml_collections.ConfigDict, order: list[str], logs: dict[str, list],
        workdir: str) -> dict:
  """Loss barriers and the test-accuracy drop along the line between each run's two
  members; writes every point's metrics to ``lmc.jsonl``."""
  alphas = np.asarray(study.alphas, float)
  first = lambda tree, i: jax.tree.map(lambda x: x[i], tree)
  line = lambda tree: points.interpolate(first(tree, 0), first(tree, 1), alphas)
  rows, summary = [], {}
  for name in order:
    task = make_task(study.runs[name])
    params, batch_stats = points.final_weights(os.path.join(workdir, name), [0, 1])
    states = points.states_at(line(params), line(batch_stats), task.model,
                              make_optimizer(task.config))
    run_rows = points.measure(task, states, name, "alpha", alphas)
    rows += run_rows
    summary[name] = {key: points.barrier(alphas, [r[key] for r in run_rows])
                     for key in (keys.TRAIN_LOSS, keys.TEST_LOSS)}
    summary[name]["test/accuracy_drop"] = points.barrier(
        alphas, [-r[keys.TEST_ACCURACY] for r in run_rows])
  rundir.write_jsonl(os.path.join(workdir, ROWS), rows)
  return summary


def summarise(summary: dict) -> list[str]:
  """One line per run: the barriers."""
  return [f"{name:>16}: loss barrier train {r[keys.TRAIN_LOSS]:.4f}, test "
          f"{r[keys.TEST_LOSS]:.4f}; test accuracy drop {100 * r['test/accuracy_drop']:.2f} "
          "points" for name, r in summary.items()]


def figure(study: ml_collections.ConfigDict, summary: dict, logs: dict[str, list],
           workdir: str) -> None:
  """``lmc.png``: :data:`ncjax.keys.POINTS` against alpha, one line per run."""
  with open(os.path.join(workdir, ROWS)) as f:
    rows = [json.loads(line) for line in f]
  plots.points(rows, "alpha", keys.POINTS, os.path.join(workdir, "lmc.png"),
               title=study.get("name", ""))
