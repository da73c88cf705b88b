"""Transfer: does the collapse of source features (VCI) predict how well they transfer?

A single-factor design around the run ``base`` (every other run changes one recipe key,
every run has the same >= 2 seeds, refused before training otherwise): each seed's frozen
penultimate features on the source splits and on each of ``targets`` (``images.load``
arguments), their VCI, and the test accuracy of a reference linear probe
(:func:`probe_accuracy`, options ``probe``) in each of ``regimes`` (a target and ``shots``
per class, 0 = all, over ``draws`` draws); Spearman's rho between recipe means of VCI
(source train) and probe accuracy per regime, with an interval that resamples seeds
within recipes; ``transfer.jsonl``, ``summary.json``, ``transfer.png``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import cast

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ncjax import plots
from ncjax.analysis import points
from ncjax.collapse import vci
from ncjax.data import images
from ncjax.stats import class_stats
from ncjax.tasks import make_task
from ncjax.tasks.classification import Classification
from ncjax.train import rundir
from ncjax.train.config import member_seeds

EXTRACT_BATCH = 1000  # images per forward pass when extracting frozen features


# Config keys that are not recipe factors: bookkeeping, devices, seeds, metrics schedule.
NOT_FACTORS = frozenset({
    "name", "seed", "num_seeds", "metrics_every", "checkpoint_every", "keep_checkpoints",
    "snapshots", "sample_size", "watchdog_floor", "watchdog_multiple", "data.read_threads",
    "data.prefetch", "data.eval_batch_size", "mesh.members", "mesh.data"})


def recipe_factors(base: ml_collections.ConfigDict,
                   run: ml_collections.ConfigDict) -> dict[str, tuple]:
  """``{key: (base value, run value)}`` of the recipe keys (not :data:`NOT_FACTORS`) on
  which ``run`` differs from ``base``."""
  a, b = rundir.flat(base.to_dict()), rundir.flat(run.to_dict())
  keys = sorted((set(a) | set(b)) - NOT_FACTORS)
  return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def validate(study: ml_collections.ConfigDict, order: list[str]) -> None:
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
  return [float(vci(class_stats(jnp.asarray(f), jnp.asarray(labels), num_classes=num_classes)))
          for f in features]


def _transfer_rows(study, name: str, workdir: str, targets: dict) -> list[dict]:
  """One row per seed of run ``name``: VCI of its features on the source splits and the
  targets, and its probe accuracy in every regime."""
  task = cast(Classification, make_task(study.runs[name]))  # validated: image classifiers
  seeds = member_seeds(study.runs[name])
  features = _extractor(task, points.final_weights(os.path.join(workdir, name),
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


def run(study: ml_collections.ConfigDict, order: list[str], logs: dict[str, list],
        workdir: str) -> dict:
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
  columns = [k for k in rows[0] if k.startswith(("vci/", "accuracy/"))]
  recipes = {n: {"factor": next(r["factor"] for r in rows if r["recipe"] == n),
                 **{k: float(per(k)[i].mean()) for k in columns},
                 **{f"{k}_sd": float(per(k)[i].std()) for k in columns}}
             for i, n in enumerate(order)}
  return {"base": study.base, "regimes": regimes, "recipes": recipes}


def summarise(summary: dict) -> list[str]:
  """A table of the recipes (VCI, probe accuracy per regime) and rho per regime."""
  regimes, recipes = summary["regimes"], summary["recipes"]
  lines = [f"{'recipe':>14} {'factor':>28} {'VCI src':>8} " + " ".join(
      f"{r[:12]:>12}" for r in regimes)]
  for n, r in recipes.items():
    lines.append(f"{n:>14} {r['factor'][:28]:>28} {r['vci/source']:8.4f} " + " ".join(
        f"{100 * r[f'accuracy/{g}']:11.2f}%" for g in regimes))
  for g, r in regimes.items():
    lines.append(f"Spearman rho, VCI (source train) vs {g} probe accuracy over "
                 f"{r['n_recipes']} recipe means ({r['n_seeds']} seeds each): {r['rho']:+.3f} "
                 f"(95% interval {r['interval'][0]:+.2f} to {r['interval'][1]:+.2f}, seeds "
                 "resampled within recipes)")
  return lines


def figure(study: ml_collections.ConfigDict, summary: dict, logs: dict[str, list],
           workdir: str) -> None:
  """``transfer.png``: probe accuracy against source VCI, one panel per regime."""
  plots.transfer(summary, os.path.join(workdir, "transfer.png"), title=study.get("name", ""))
