"""Studies: several training runs in one directory, then one summary.

    ncjax study --config experiments/vci_transfer.py --workdir runs/transfer

A study config holds ``runs`` (name -> a complete ``ncjax train`` config), run in
``workdir/<name>`` by the one trainer (each resumable like any run), and ``summary``: the
name of a study in :data:`STUDIES` (one module each: :mod:`~ncjax.studies.compare`,
:mod:`~ncjax.studies.transfer`, :mod:`~ncjax.studies.lmc`,
:mod:`~ncjax.studies.pruning`), which checks its own keys, measures, prints and draws.
Adding a study is a new module here with the four functions of :class:`Study` and a line
in :data:`STUDIES`.

``init_from = "@name"`` in a run starts it from the run ``name`` of the same study;
runs are trained in an order that puts every such source first.
"""

from __future__ import annotations

import json
import os
from typing import Protocol

import ml_collections

from ncjax import plots
from ncjax.studies import compare, lmc, pruning, transfer
from ncjax.tasks import make_task, validate
from ncjax.train import rundir, train


class Study(Protocol):
  """A summary over the runs of a study (a module with these four functions)."""

  def validate(self, study: ml_collections.ConfigDict, order: list[str]) -> None:
    """Raises ValueError, before anything trains, when the study's own keys are bad."""

  def run(self, study: ml_collections.ConfigDict, order: list[str], logs: dict[str, list],
          workdir: str) -> dict:
    """Measures what the study needs from the trained runs (``logs``: run -> logged
    records); writes its rows beside the runs; returns the summary (``summary.json``)."""

  def summarise(self, summary: dict) -> list[str]:
    """The summary as lines for the terminal."""

  def figure(self, study: ml_collections.ConfigDict, summary: dict, logs: dict[str, list],
             workdir: str) -> None:
    """Draws the study's figure into ``workdir``."""


# config.summary -> the study.
STUDIES: dict[str, Study] = {"compare": compare, "transfer": transfer, "lmc": lmc,
                             "pruning": pruning}


def _source(config: ml_collections.ConfigDict) -> str | None:
  init = config.init_from
  return init[1:] if init and init.startswith("@") else None


def run_order(runs: ml_collections.ConfigDict) -> list[str]:
  """Run names with every ``@source`` before the runs started from it.

  Raises:
    ValueError: a run starts from an unknown run, or the references form a cycle.
  """
  order: list[str] = []
  pending = list(runs.keys())
  while pending:
    ready = [n for n in pending if _source(runs[n]) in (None, *order)]
    if not ready:
      missing = {n: _source(runs[n]) for n in pending}
      raise ValueError(f"study runs start from runs that are not in it (or a cycle): "
                       f"{missing}.")
    order += ready
    pending = [n for n in pending if n not in ready]
  return order


def validate_study(study: ml_collections.ConfigDict) -> list[str]:
  """Checks every run's config and the study's own keys; returns the run order."""
  if "runs" not in study or "summary" not in study:
    raise ValueError("not a study config (it needs runs and summary): for one run use "
                     "`ncjax train`.")
  order = run_order(study.runs)
  for name in order:
    try:
      validate(study.runs[name])
    except ValueError as e:
      raise ValueError(f"runs.{name}: {e}") from e
  if study.summary not in STUDIES:
    raise ValueError(f"summary must be one of {tuple(STUDIES)}, got {study.summary!r}.")
  STUDIES[study.summary].validate(study, order)
  return order


def run_study(study: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every run of ``study`` (resuming finished or interrupted ones), then writes,
  prints and draws its summary; returns it."""
  order = validate_study(study)
  logs = {}
  for name in order:
    config = study.runs[name]
    source = _source(config)
    if source:
      with config.unlocked():
        config.init_from = os.path.join(workdir, source)
    run_dir = os.path.join(workdir, name)
    print(f"study: run {name} in {run_dir}", flush=True)
    logs[name] = train(make_task(config), run_dir)
    plots.run_figures(logs[name], config, run_dir)
  kind = STUDIES[study.summary]
  summary = kind.run(study, order, logs, workdir)
  print(*kind.summarise(summary), sep="\n")
  kind.figure(study, summary, logs, workdir)
  rundir.write_atomic(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=1))
  return summary
