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
  Spearman correlations in ``summary.json`` and the figure ``transfer.png``;
- ``lmc`` (linear mode connectivity): for every run (two or more members, e.g. two seeds
  or ``init_seed`` shared), every logged metric at the ``alphas`` points of the straight
  line from member 0's final parameters to member 1's, BatchNorm statistics recomputed at
  each point; ``lmc.jsonl``, the barriers in ``summary.json``, ``lmc.png``;
- ``pruning``: for every run, member 0's final network pruned by global magnitude at each
  of ``sparsities``, measured as pruned and after ``finetune`` (overrides of the run's
  config for a short fine-tune, pruned weights held at 0); ``pruning.jsonl``,
  ``pruning.png``.

The points of ``lmc`` and ``pruning`` are one vmapped state each, measured by the
trainer's own evaluator (:mod:`ncjax.analysis.points`).

``init_from = "@name"`` in a run starts it from the run ``name`` of the same study;
runs are trained in an order that puts every such source first.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import numpy as np

from ncjax import plots
from ncjax.analysis import points
from ncjax.tasks import make_task
from ncjax.train import checkpoints, rundir, train
from ncjax.train import mesh as meshes
from ncjax.train.config import member_seeds, validate
from ncjax.train.state import make_loss, make_optimizer


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
  if study.summary not in SUMMARIES:
    raise ValueError(f"summary must be one of {tuple(SUMMARIES)}, got {study.summary!r}.")
  if study.summary == "lmc":
    alphas = np.asarray(study.get("alphas", ()), float)
    if alphas.ndim != 1 or alphas.size < 2:
      raise ValueError(f"lmc: alphas must list >= 2 points, got {study.get('alphas')!r}.")
    few = [n for n in order if len(member_seeds(study.runs[n])) < 2]
    if few:
      raise ValueError(f"lmc: runs {few} have one member; interpolation needs two "
                       "(num_seeds = 2).")
  if study.summary == "pruning":
    points.check_sparsities(study.get("sparsities", ()))
    finetune = _finetune_config(study, study.runs[order[0]])
    validate(finetune)
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
    plots.run_figures(logs[name], config, run_dir)
  summary = SUMMARIES[study.summary](study, order, logs, workdir)
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


def _compare(study, order, logs, workdir) -> dict:
  """Final test accuracy and steps to 95% test accuracy of each arm (runs x seeds)."""
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
  plots.overlay(logs, study.get("plot", PLOT_KEYS), os.path.join(workdir, "compare.png"),
                title=study.get("name", ""))
  return out


def _spearman_interval(x, y, seed: int = 0) -> tuple[float, float]:
  """Paired-bootstrap 95% percentile interval of Spearman's rho (2,000 resamples)."""
  from scipy.stats import bootstrap, spearmanr

  if len(x) < 3:
    return (float("nan"), float("nan"))
  rho = lambda a, b: spearmanr(a, b).statistic
  ci = bootstrap((x, y), rho, paired=True, vectorized=False, n_resamples=2000,
                 method="percentile", rng=np.random.default_rng(seed)).confidence_interval
  return (float(ci.low), float(ci.high))


def _transfer(study, order, logs, workdir) -> dict:
  """One row per (source model, seed): its source features' VCI and NC1 and its probe's
  accuracy (a probe of S seeds starts each seed from that seed's source); Spearman's rho
  over all rows with a paired-bootstrap 95% interval."""
  from scipy.stats import spearmanr

  rows = []
  for source, probe in study.pairs:
    finals = {key: _final(logs[source], f"collapse/{key}") for key in ("vci", "nc1")}
    source_acc, probe_acc = _final(logs[source], "test/accuracy"), _final(logs[probe],
                                                                          "test/accuracy")
    for seed in range(len(probe_acc)):
      pick = lambda v: float(v[seed if len(v) > 1 else 0])
      rows.append({"source": source, "probe": probe, "seed": seed, "vci": pick(finals["vci"]),
                   "nc1": pick(finals["nc1"]), "source_test_accuracy": pick(source_acc),
                   "probe_test_accuracy": float(probe_acc[seed])})
  rundir.write_jsonl(os.path.join(workdir, "transfer.jsonl"), rows)
  probe = [r["probe_test_accuracy"] for r in rows]
  rho = {key: float(spearmanr([r[key] for r in rows], probe).statistic) for key in ("vci", "nc1")}
  interval = {key: _spearman_interval([r[key] for r in rows], probe) for key in rho}
  print(f"{'source':>16} {'seed':>4} {'VCI':>8} {'NC1':>8} {'probe acc':>10}")
  for r in rows:
    print(f"{r['source']:>16} {r['seed']:4d} {r['vci']:8.4f} {r['nc1']:8.4f} "
          f"{100 * r['probe_test_accuracy']:9.2f}%")
  print("Spearman rho with probe accuracy over %d models x seeds: " % len(rows) + ", ".join(
      f"{key.upper()} {rho[key]:+.3f} (95% CI {interval[key][0]:+.2f} to {interval[key][1]:+.2f})"
      for key in rho))
  plots.transfer(rows, rho, os.path.join(workdir, "transfer.png"), title=study.get("name", ""))
  return {"rows": rows, "spearman": rho, "spearman_95ci": interval}


BATCH_STATS_SAMPLES = 4096  # train examples for the BatchNorm statistics at each point
POINT_KEYS = ("train/loss", "test/loss", "test/accuracy", "collapse/mir", "collapse/hdr",
              "collapse/nc1", "collapse/vci", "collapse/entropy_means")


def _measure(task, states, label: str, x_name: str, xs) -> list[dict]:
  """The trainer's metrics of the K members of ``states`` (BatchNorm statistics
  recomputed at each): one row per point."""
  inputs, _ = task.examples("train", BATCH_STATS_SAMPLES)
  states = points.recompute_batch_stats(states, inputs)
  values = meshes.fetch(task.evaluate(states, np.zeros(len(xs), int)))
  return [{"run": label, x_name: float(x), **{k: float(v[i]) for k, v in values.items()}}
          for i, x in enumerate(xs)]


def _final_weights(workdir: str, members: list[int]) -> tuple[dict, dict]:
  """(params, batch_stats) of the given members of the run's newest checkpoint."""
  weights = checkpoints.restore_weights(workdir)
  pick = lambda tree: jax.tree.map(lambda x: np.asarray(x)[members], tree)
  return pick(weights["params"]), pick(weights["batch_stats"])


def _lmc(study, order, logs, workdir) -> dict:
  """Loss and accuracy barriers along the line between each run's two members."""
  alphas = np.asarray(study.alphas, float)
  rows, summary = [], {}
  for name in order:
    task = make_task(study.runs[name])
    params, batch_stats = _final_weights(os.path.join(workdir, name), [0, 1])
    first = lambda tree, i: jax.tree.map(lambda x: x[i], tree)
    line = lambda tree: points.interpolate(first(tree, 0), first(tree, 1), alphas)
    states = points.states_at(line(params), line(batch_stats), task.model,
                              make_optimizer(task.config))
    run_rows = _measure(task, states, name, "alpha", alphas)
    rows += run_rows
    summary[name] = {key: _barrier(alphas, [r[key] for r in run_rows])
                     for key in ("train/loss", "test/loss")}
    summary[name]["test/accuracy_drop"] = _barrier(alphas, [-r["test/accuracy"] for r in run_rows])
    print(f"{name:>16}: loss barrier train {summary[name]['train/loss']:.4f}, test "
          f"{summary[name]['test/loss']:.4f}; test accuracy drop "
          f"{100 * summary[name]['test/accuracy_drop']:.2f} points")
  rundir.write_jsonl(os.path.join(workdir, "lmc.jsonl"), rows)
  plots.points(rows, "alpha", POINT_KEYS, os.path.join(workdir, "lmc.png"),
               title=study.get("name", ""))
  return summary


def _barrier(xs: np.ndarray, ys) -> float:
  """max over the path of y minus the straight line between its end values."""
  ys = np.asarray(ys, float)
  t = (xs - xs[0]) / (xs[-1] - xs[0])
  return float(np.max(ys - ((1 - t) * ys[0] + t * ys[-1])))


def _finetune_config(study, config):
  """The run's config for one network, no warm-up, updated by ``study.finetune``."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.num_seeds, c.sweep_key, c.sweep_values, c.optim.warmup_steps = 1, "", (), 0
  c.update(study.get("finetune", {}))
  return c


def _pruning(study, order, logs, workdir) -> dict:
  """The metrics of each run's network pruned to each sparsity, before and after a
  short fine-tune."""
  sparsities = np.asarray(study.sparsities, float)
  rows = []
  for name in order:
    task = make_task(study.runs[name])
    params, batch_stats = _final_weights(os.path.join(workdir, name), [0])
    params, masks = points.magnitude_prune(jax.tree.map(lambda x: x[0], params), sparsities)
    batch_stats = jax.tree.map(lambda x: np.repeat(x, len(sparsities), 0), batch_stats)
    tune = _finetune_config(study, task.config)
    states = points.states_at(params, batch_stats, task.model, make_optimizer(tune))
    rows += _measure(task, states, f"{name} pruned", "sparsity", sparsities)
    tune_task = make_task(tune)
    tuned = points.finetune(states, masks, tune_task.train_stream(0), make_loss(tune),
                            tune.steps, tune_task.mesh)
    rows += _measure(task, tuned, f"{name} + {tune.steps} fine-tune steps", "sparsity",
                     sparsities)
  rundir.write_jsonl(os.path.join(workdir, "pruning.jsonl"), rows)
  for r in rows:
    print(f"{r['run']:>36} sparsity {r['sparsity']:.2f}: test acc "
          f"{100 * r['test/accuracy']:6.2f}%, MIR {r['collapse/mir']:.3f}, HDR "
          f"{r['collapse/hdr']:.3f}, NC1 {r['collapse/nc1']:.4f}")
  plots.points(rows, "sparsity", POINT_KEYS, os.path.join(workdir, "pruning.png"),
               title=study.get("name", ""))
  return {"rows": rows}


# summary name -> fn(study, run order, {run: records}, workdir) -> the summary.json dict
SUMMARIES = {"compare": _compare, "transfer": _transfer, "lmc": _lmc, "pruning": _pruning}
