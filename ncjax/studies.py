"""Studies: several training runs in one directory, then one summary.

    ncjax study --config experiments/vci_transfer.py --workdir runs/transfer

A study config holds ``runs`` (name -> a complete ``ncjax train`` config), run in
``workdir/<name>`` by the one trainer (each resumable like any run), and ``summary``:

- ``compare``: final test accuracy of each arm of ``compare`` (arm -> run names; every
  seed of those runs pooled: mean +- std) and each seed's first logged step with test
  accuracy >= 95% (None if never; its mean and std over the seeds that got there),
  written to ``summary.json``, and ``compare.png``: the keys of ``plot`` (default
  :data:`PLOT_KEYS`) over steps, one line per run;
- ``transfer``: for each (source, probe) in ``pairs``, the source run's final VCI and NC1
  on its train split against the probe run's final test accuracy; ``transfer.jsonl``,
  Spearman correlations in ``summary.json`` and the figure ``transfer.png``.

``init_from = "@name"`` in a run starts it from the run ``name`` of the same study;
runs are trained in an order that puts every such source first.
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np

from ncjax import plots
from ncjax.tasks import make_task
from ncjax.train import rundir, train
from ncjax.train.config import validate


def _source(config: ml_collections.ConfigDict) -> str | None:
  init = config.init_from
  return init[1:] if init and init.startswith("@") else None


PLOT_KEYS = ("test/accuracy", "collapse/mir", "collapse/hdr", "sample/mir", "sample/hdr")


def run_order(runs: ml_collections.ConfigDict) -> list[str]:
  """Run names with every ``@source`` before the runs started from it.

  Raises:
    ValueError: a run starts from an unknown run, or the references form a cycle.
  """
  order, pending = [], list(runs.keys())
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
  """Checks every run's config and the summary's references; returns the run order."""
  if "runs" not in study or "summary" not in study:
    raise ValueError("not a study config (it needs runs and summary): for one run use "
                     "`ncjax train`.")
  order = run_order(study.runs)
  for name in order:
    try:
      validate(study.runs[name])
    except ValueError as e:
      raise ValueError(f"runs.{name}: {e}") from e
  named = [n for runs in study.get("compare", {}).values() for n in runs]
  named += [n for pair in study.get("pairs", ()) for n in pair]
  unknown = sorted(set(named) - set(order))
  if unknown:
    raise ValueError(f"the summary names runs that are not in the study: {unknown}.")
  if study.summary not in ("compare", "transfer"):
    raise ValueError(f"summary must be compare or transfer, got {study.summary!r}.")
  return order


def run_study(study: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every run of ``study`` (resuming finished or interrupted ones) and writes the
  summary; returns it."""
  order = validate_study(study)
  logs = {}
  for name in order:
    config = study.runs[name]
    if _source(config):
      with config.unlocked():
        config.init_from = os.path.join(workdir, _source(config))
    run_dir = os.path.join(workdir, name)
    print(f"study: run {name} in {run_dir}", flush=True)
    logs[name] = train(make_task(config), run_dir)
    plots.curves(logs[name], os.path.join(run_dir, "curves.png"), title=config.name or name)
  if study.summary == "compare":
    summary = _compare(study, logs)
    plots.overlay(logs, study.get("plot", PLOT_KEYS), os.path.join(workdir, "compare.png"),
                  title=study.get("name", ""))
  else:
    summary = _transfer(study, logs, workdir)
  rundir.write_atomic(os.path.join(workdir, "summary.json"), json.dumps(summary, indent=1))
  return summary


def _final(records: list[dict], key: str) -> np.ndarray:
  return np.atleast_1d(np.asarray(records[-1][key], float))  # (S,)


def steps_to(records: list[dict], key: str, threshold: float) -> list[int | None]:
  """Each seed's first logged step with ``key`` >= ``threshold`` (None if never)."""
  values = np.stack([np.atleast_1d(np.asarray(r[key], float)) for r in records])  # (T, S)
  steps = [r["step"] for r in records]
  return [steps[int(np.argmax(column))] if column.any() else None
          for column in (values >= threshold).T]


def _compare(study, logs) -> dict:
  out = {}
  for name, runs in study.compare.items():
    acc = np.concatenate([_final(logs[run], "test/accuracy") for run in runs])
    reached = [s for run in runs for s in steps_to(logs[run], "test/accuracy", 0.95)]
    got = np.asarray([s for s in reached if s is not None], float)
    out[name] = {"test_accuracy_mean": float(acc.mean()), "test_accuracy_std": float(acc.std()),
                 "seeds": len(acc), "test_accuracy": acc.tolist(), "steps_to_test_95": reached,
                 "steps_to_test_95_mean": float(got.mean()) if got.size else None,
                 "steps_to_test_95_std": float(got.std()) if got.size else None}
    when = (f"95% test at step {got.mean():.0f} +- {got.std():.0f} ({got.size}/{len(reached)})"
            if got.size else "never 95% test")
    print(f"{name:>16}: test accuracy {100 * acc.mean():.2f}% +- {100 * acc.std():.2f}% "
          f"({len(acc)} seeds); {when}")
  return out


def _transfer(study, logs, workdir) -> dict:
  from scipy.stats import spearmanr

  rows = []
  for source, probe in study.pairs:
    rows.append({"source": source, "probe": probe,
                 "vci": float(_final(logs[source], "collapse/vci").mean()),
                 "nc1": float(_final(logs[source], "collapse/nc1").mean()),
                 "source_test_accuracy": float(_final(logs[source], "test/accuracy").mean()),
                 "probe_test_accuracy": float(_final(logs[probe], "test/accuracy").mean())})
  rundir.write_atomic(os.path.join(workdir, "transfer.jsonl"),
                      "".join(json.dumps(r) + "\n" for r in rows))
  probe = [r["probe_test_accuracy"] for r in rows]
  rho = {key: float(spearmanr([r[key] for r in rows], probe).statistic) for key in ("vci", "nc1")}
  print(f"{'source':>16} {'VCI':>8} {'NC1':>8} {'probe acc':>10}")
  for r in rows:
    print(f"{r['source']:>16} {r['vci']:8.4f} {r['nc1']:8.4f} "
          f"{100 * r['probe_test_accuracy']:9.2f}%")
  print(f"Spearman rho with probe accuracy: VCI {rho['vci']:+.3f}, NC1 {rho['nc1']:+.3f}")
  plots.transfer(rows, rho, os.path.join(workdir, "transfer.png"), title=study.get("name", ""))
  return {"rows": rows, "spearman": rho}
