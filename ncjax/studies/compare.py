"""Compare arms: final test accuracy and steps to 95% test accuracy.

``compare`` (arm -> run names; every seed of those runs pooled): each arm's final test
accuracy (mean +- std) and each seed's first logged step with test accuracy >= 95% (None
if never; the mean and std over the seeds that got there), in ``summary.json``; and
``compare.png``: the keys of ``plot`` (default :data:`ncjax.keys.COMPARE`) over steps,
one line per run.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from ncjax import keys, plots


def validate(study: ml_collections.ConfigDict, order: list[str]) -> None:
  """Every run an arm names is a run of the study."""
  named = [n for runs in study.get("compare", {}).values() for n in runs]
  unknown = sorted(set(named) - set(order))
  if unknown:
    raise ValueError(f"the summary names runs that are not in the study: {unknown}.")


def steps_to(records: list[dict], key: str, threshold: float) -> list[int | None]:
  """Each seed's first logged step with ``key`` >= ``threshold`` (None if never)."""
  values = np.stack([np.atleast_1d(np.asarray(r[key], float)) for r in records])  # (T, S)
  steps = [r["step"] for r in records]
  return [steps[int(np.argmax(column))] if column.any() else None
          for column in (values >= threshold).T]


def _final(records: list[dict], key: str) -> np.ndarray:
  return np.atleast_1d(np.asarray(records[-1][key], float))  # (S,)


def run(study: ml_collections.ConfigDict, order: list[str], logs: dict[str, list],
        workdir: str) -> dict:
  """Final test accuracy and steps to 95% test accuracy of each arm (runs x seeds)."""
  out = {}
  for name, runs in study.compare.items():
    acc = np.concatenate([_final(logs[run], keys.TEST_ACCURACY) for run in runs])
    reached = [s for run in runs for s in steps_to(logs[run], keys.TEST_ACCURACY, 0.95)]
    got = np.asarray([s for s in reached if s is not None], float)
    out[name] = {"test_accuracy_mean": float(acc.mean()), "test_accuracy_std": float(acc.std()),
                 "seeds": len(acc), "test_accuracy": acc.tolist(), "steps_to_test_95": reached,
                 "steps_to_test_95_mean": float(got.mean()) if got.size else None,
                 "steps_to_test_95_std": float(got.std()) if got.size else None}
  return out


def summarise(summary: dict) -> list[str]:
  """One line per arm: accuracy mean +- std, and when 95% test accuracy came."""
  lines = []
  for name, arm in summary.items():
    reached = arm["steps_to_test_95"]
    got = sum(s is not None for s in reached)
    when = (f"95% test at step {arm['steps_to_test_95_mean']:.0f} +- "
            f"{arm['steps_to_test_95_std']:.0f} ({got}/{len(reached)})" if got
            else "never 95% test")
    lines.append(f"{name:>16}: test accuracy {100 * arm['test_accuracy_mean']:.2f}% +- "
                 f"{100 * arm['test_accuracy_std']:.2f}% ({arm['seeds']} seeds); {when}")
  return lines


def figure(study: ml_collections.ConfigDict, summary: dict, logs: dict[str, list],
           workdir: str) -> None:
  """``compare.png``: the keys of ``plot`` over steps, one line per run."""
  plots.overlay(logs, study.get("plot", keys.COMPARE), os.path.join(workdir, "compare.png"),
                title=study.get("name", ""))
