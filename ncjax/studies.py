"""Studies: several training runs in one directory, then one summary.

    ncjax study --config experiments/vci_transfer.py --workdir runs/transfer

A study config holds ``runs`` (name -> a complete ``ncjax train`` config), run in
``workdir/<name>`` by the one trainer (each resumable like any run), and ``summary``:

- ``compare``: final test accuracy of each arm of ``compare`` (arm -> run names; every
  seed of those runs pooled: mean +- std) and each seed's first logged step with test
  accuracy >= 95% (None if never; its mean and std over the seeds that got there),
  written to ``summary.json``, and ``compare.png``: the keys of ``plot`` (default
  :data:`PLOT_KEYS`) over steps, one line per run;
- ``transfer``: a single-factor design around the run ``base`` (every other run changes
  one recipe key, every run has the same >= 2 seeds, refused before training otherwise):
  each seed's frozen penultimate features on the source splits and on each of ``targets``
  (``images.load`` arguments), their VCI, and the test accuracy of a reference linear
  probe (:func:`probe_accuracy`, options ``probe``) in each of ``regimes`` (a target and
  ``shots`` per class, 0 = all, over ``draws`` draws); Spearman's rho between recipe
  means of VCI (source train) and probe accuracy per regime, with an interval that
  resamples seeds within recipes; ``transfer.jsonl``, ``summary.json``, ``transfer.png``;
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

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np

from ncjax import plots
from ncjax.analysis import points
from ncjax.collapse import vci
from ncjax.data import images
from ncjax.stats import class_stats
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
  unknown = sorted(set(named) - set(order))
  if unknown:
    raise ValueError(f"the summary names runs that are not in the study: {unknown}.")
  if study.summary not in SUMMARIES:
    raise ValueError(f"summary must be one of {tuple(SUMMARIES)}, got {study.summary!r}.")
  if study.summary == "transfer":
    _check_transfer(study, order)
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


# Config keys that are not recipe factors: bookkeeping, devices, seeds, metrics schedule.
NOT_FACTORS = frozenset({
    "name", "seed", "num_seeds", "metrics_every", "checkpoint_every", "keep_checkpoints",
    "snapshots", "sample_size", "watchdog_floor", "watchdog_multiple", "data.read_threads",
    "data.prefetch", "data.eval_batch_size", "mesh.members", "mesh.data"})


def _flat(tree: dict, prefix: str = "") -> dict:
  """A nested dict as ``{dotted key: value}``."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out |= _flat(value, f"{prefix}{key}.")
    else:
      out[prefix + key] = value
  return out


def recipe_factors(base: ml_collections.ConfigDict,
                   run: ml_collections.ConfigDict) -> dict[str, tuple]:
  """``{key: (base value, run value)}`` of the recipe keys (not :data:`NOT_FACTORS`) on
  which ``run`` differs from ``base``."""
  a, b = _flat(base.to_dict()), _flat(run.to_dict())
  keys = sorted((set(a) | set(b)) - NOT_FACTORS)
  return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def _check_transfer(study: ml_collections.ConfigDict, order: list[str]) -> None:
  """A transfer study is a single-factor design: every run differs from ``base`` in at
  most one recipe key, has >= 2 seeds (as many as the base), and names its targets."""
  base = study.get("base")
  if base not in study.runs:
    raise ValueError(f"transfer: base must name a run of the study, got {base!r}.")
  seeds = study.runs[base].num_seeds
  for name in order:
    run = study.runs[name]
    if run.task != "classification" or run.sweep_key:
      raise ValueError(f"transfer: runs.{name} must be one classification recipe (task "
                       f"classification, no sweep_key), got task {run.task!r}, sweep_key "
                       f"{run.sweep_key!r}.")
    if run.num_seeds < 2:
      raise ValueError(f"transfer: runs.{name} has num_seeds = {run.num_seeds}; every recipe "
                       "needs >= 2 seeds: the interval resamples seeds within recipes.")
    if run.num_seeds != seeds:
      raise ValueError(f"transfer: runs.{name} has num_seeds = {run.num_seeds}, the base "
                       f"runs.{base} {seeds}: every recipe needs the same number of seeds.")
    changed = recipe_factors(study.runs[base], run)
    if len(changed) > 1:
      what = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in changed.items())
      raise ValueError(f"transfer: runs.{name} changes {len(changed)} factors against the "
                       f"base runs.{base}: {what}; change one factor per recipe.")
  for regime, spec in study.regimes.items():
    if spec.target not in study.targets:
      raise ValueError(f"transfer: regimes.{regime}.target must be one of "
                       f"{sorted(study.targets)}, got {spec.target!r}.")
    shots = spec.get("shots", 0)
    if shots and (shots < study.probe.folds or spec.get("draws", 0) < 1):
      raise ValueError(f"transfer: regimes.{regime} needs shots >= probe.folds "
                       f"({study.probe.folds}) and draws >= 1, got shots {shots}, draws "
                       f"{spec.get('draws')}.")


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Spearman's rho of each row pair: x, y (..., R) -> (...) (NaN if a row is constant)."""
  from scipy.stats import rankdata

  rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
  rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.sum(rx * ry, -1) / np.sqrt(np.sum(rx * rx, -1) * np.sum(ry * ry, -1))


def _spearman_interval(x, y, *, seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
  """95% percentile-bootstrap interval of Spearman's rho between recipe means.

  Each draw resamples the S seeds of every recipe with replacement (the same seeds for x
  and y), recomputes the R recipe means and their rho: the recipes are fixed, the seeds
  are the sampling unit.

  Args:
    x, y: (R, S) values of R recipes x S seeds, paired (x[r, s] and y[r, s] from one model).
  Returns:
    (low, high); NaN when R < 3.
  """
  x, y = np.asarray(x, float), np.asarray(y, float)
  if x.shape[0] < 3:
    return (float("nan"), float("nan"))
  pick = np.random.default_rng(seed).integers(0, x.shape[1], (resamples, *x.shape))
  means = lambda v: np.take_along_axis(np.broadcast_to(v, pick.shape), pick, 2).mean(2)
  lo, hi = np.nanpercentile(_spearman(means(x), means(y)), [2.5, 97.5])
  return (float(lo), float(hi))


def probe_accuracy(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   *, cs, folds: int, max_iter: int) -> float:
  """Test accuracy of the reference linear probe: multinomial logistic regression (L-BFGS)
  on standardised features, its L2 strength C chosen from ``cs`` by ``folds``-fold
  stratified cross-validation accuracy on ``train`` (Kornblith et al. 2019's protocol).

  Args:
    train, test: (features (n, d), labels (n,)).
  """
  from sklearn.linear_model import LogisticRegressionCV
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  from threadpoolctl import threadpool_limits

  probe = make_pipeline(StandardScaler(), LogisticRegressionCV(
      Cs=list(cs), l1_ratios=(0.0,), cv=folds, scoring="accuracy", solver="lbfgs",
      max_iter=max_iter, use_legacy_attributes=False, n_jobs=1))
  with threadpool_limits(limits=1):  # small problems: BLAS threads only add contention
    probe.fit(*train)
    return float(probe.score(*test))


def _probe_name(probe: ml_collections.ConfigDict) -> str:
  return (f"scikit-learn LogisticRegressionCV (multinomial, L-BFGS, max_iter "
          f"{probe.max_iter}) on StandardScaler'd frozen features; L2 C from "
          f"{list(probe.cs)} by {probe.folds}-fold stratified CV accuracy")


def _shots(labels: np.ndarray, shots: int, draw: int) -> np.ndarray:
  """Indices of ``shots`` examples of each class, drawn without replacement (seed ``draw``,
  the same for every model)."""
  rng = np.random.default_rng(draw)
  return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False)
                                 for c in np.unique(labels)]))


def _extractor(task, weights: tuple[dict, dict]):
  """``features(data, split)``: eval-mode penultimate features of every seed of a run on a
  split of ``data`` (normalised with the source's pixel statistics), ((S, n, d), labels
  (n,)); one compiled forward pass for all splits."""
  import jax.numpy as jnp

  params, batch_stats = weights
  forward = jax.jit(jax.vmap(lambda p, b, x: task.model.apply(
      {"params": p, "batch_stats": b}, x, train=False)[1], in_axes=(0, 0, None)))

  def features(data, split: str) -> tuple[np.ndarray, np.ndarray]:
    if data.shape != task.data.shape:
      raise ValueError(f"transfer: target images of shape {data.shape} do not fit the source "
                       f"model's input {task.data.shape}.")
    data = dataclasses.replace(data, mean=task.data.mean, std=task.data.std)
    parts, labels = [], []
    for batch in images.eval_batches(data, split, EXTRACT_BATCH):
      out = np.asarray(forward(params, batch_stats, jnp.asarray(batch.inputs)))
      parts.append(out[:, batch.mask])
      labels.append(batch.labels[batch.mask])
    return np.concatenate(parts, 1), np.concatenate(labels)

  return features


def _vci(features: np.ndarray, labels: np.ndarray) -> list[float]:
  """VCI of each seed's features: (S, n, d) -> S floats."""
  num_classes = int(labels.max()) + 1
  return [float(vci(class_stats(f, labels, num_classes=num_classes))) for f in features]


def _transfer_rows(study, name: str, workdir: str, targets: dict) -> list[dict]:
  """One row per seed of run ``name``: VCI of its features on the source splits and the
  targets, and its probe accuracy in every regime."""
  task = make_task(study.runs[name])
  seeds = member_seeds(study.runs[name])
  features = _extractor(task, _final_weights(os.path.join(workdir, name),
                                             list(range(len(seeds)))))
  feats = {f"{source}_{split}": features(data, split)
           for source, data in {"source": task.data, **targets}.items()
           for split in ("train", "test")}
  factor = recipe_factors(study.runs[study.base], study.runs[name])
  rows = [{"recipe": name, "factor": ", ".join(f"{k}={b}" for k, (_, b) in factor.items())
           or "base", "seed": seed} for seed in seeds]
  for key in ("source_train", "source_test", *(f"{t}_train" for t in targets)):
    for row, value in zip(rows, _vci(*feats[key]), strict=True):
      row[f"vci/{key.removesuffix('_train')}"] = value
  probe = dict(cs=study.probe.cs, folds=study.probe.folds, max_iter=study.probe.max_iter)
  for regime, spec in study.regimes.items():
    (xtr, ytr), (xte, yte) = feats[f"{spec.target}_train"], feats[f"{spec.target}_test"]
    for i, row in enumerate(rows):
      if spec.get("shots", 0):
        accs = [probe_accuracy((xtr[i][pick], ytr[pick]), (xte[i], yte), **probe)
                for pick in (_shots(ytr, spec.shots, d) for d in range(spec.draws))]
        row[f"accuracy_sd/{regime}"] = float(np.std(accs))
      else:
        accs = [probe_accuracy((xtr[i], ytr), (xte[i], yte), **probe)]
      row[f"accuracy/{regime}"] = float(np.mean(accs))
  print(f"transfer: features and probes of {name} done", flush=True)
  return rows


def _transfer(study, order, logs, workdir) -> dict:
  """VCI of each recipe's source features against its probe accuracy in each regime:
  Spearman's rho over the recipe means, its interval from resampling seeds within
  recipes; ``transfer.jsonl`` (one row per recipe and seed), ``transfer.png``."""
  targets = {name: images.load(t.name, t.get("data_dir"), idx_dir=t.get("idx_dir"),
                               classes=t.get("classes"), train_per_class=t.get("train_per_class"))
             for name, t in study.targets.items()}
  rows = [row for name in order for row in _transfer_rows(study, name, workdir, targets)]
  rundir.write_jsonl(os.path.join(workdir, "transfer.jsonl"), rows)
  per = lambda key: np.asarray([[r[key] for r in rows if r["recipe"] == n] for n in order])
  vci_source, n_seeds = per("vci/source"), len(member_seeds(study.runs[order[0]]))
  regimes = {}
  for regime, spec in study.regimes.items():
    acc, vci_target = per(f"accuracy/{regime}"), per(f"vci/{spec.target}")
    regimes[regime] = {
        "rho": float(_spearman(vci_source.mean(1), acc.mean(1))),
        "interval": list(_spearman_interval(vci_source, acc)),
        "rho_vci_target": float(_spearman(vci_target.mean(1), acc.mean(1))),
        "interval_vci_target": list(_spearman_interval(vci_target, acc)),
        "n_recipes": len(order), "n_seeds": n_seeds, "target": spec.target,
        "shots": spec.get("shots", 0) or "all", "draws": spec.get("draws", 1),
        "probe": _probe_name(study.probe)}
  keys = [k for k in rows[0] if k.startswith(("vci/", "accuracy/"))]
  recipes = {n: {"factor": next(r["factor"] for r in rows if r["recipe"] == n),
                 **{k: float(per(k)[i].mean()) for k in keys},
                 **{f"{k}_sd": float(per(k)[i].std()) for k in keys}}
             for i, n in enumerate(order)}
  print(f"{'recipe':>14} {'factor':>28} {'VCI src':>8} " + " ".join(
      f"{r[:12]:>12}" for r in regimes))
  for n, r in recipes.items():
    print(f"{n:>14} {r['factor'][:28]:>28} {r['vci/source']:8.4f} " + " ".join(
        f"{100 * r[f'accuracy/{g}']:11.2f}%" for g in regimes))
  for g, r in regimes.items():
    print(f"Spearman rho, VCI (source train) vs {g} probe accuracy over {r['n_recipes']} "
          f"recipe means ({r['n_seeds']} seeds each): {r['rho']:+.3f} (95% interval "
          f"{r['interval'][0]:+.2f} to {r['interval'][1]:+.2f}, seeds resampled within recipes)")
  summary = {"base": study.base, "regimes": regimes, "recipes": recipes}
  plots.transfer(summary, os.path.join(workdir, "transfer.png"), title=study.get("name", ""))
  return summary


EXTRACT_BATCH = 1000  # images per forward pass when extracting frozen features
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
    line = lambda tree: points.interpolate(*(jax.tree.map(lambda x, i=i: x[i], tree)
                                             for i in (0, 1)), alphas)
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
