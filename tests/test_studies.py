"""Studies: run order from ``@run`` references, validation before anything runs, the
transfer study's recipe-level statistics and probe, and tiny studies end to end."""

import json
import os
import pathlib

import numpy as np
import pytest

from ncjax import studies
from ncjax.studies import compare, transfer
from tests.runs import study as _study
from tests.runs import study_probe as _probe
from tests.runs import study_run as _run
from tests.runs import transfer_study as _transfer_study
from tests.runs import tree_digest


def test_runs_are_ordered_after_their_sources():
  study = _study("compare", probe_a=_probe("a"), a=_run(), b=_run(), probe_b=_probe("b"))
  study.compare = {"all": ("a", "b")}
  order = studies.validate_study(study)
  assert order.index("a") < order.index("probe_a") and order.index("b") < order.index("probe_b")


@pytest.mark.parametrize("change,match", [
    (lambda s: s.runs.probe_a.update({"init_from": "@nowhere"}), "not in it"),
    (lambda s: s.runs.a.update({"steps": 0}), "runs.a: config.steps"),
    (lambda s: s.update({"summary": "table"}), "summary must be"),
    (lambda s: s.update({"compare": {"arm": ("a", "x")}}), "not in the study"),
])
def test_a_bad_study_is_refused_naming_the_problem(change, match):
  study = _study("compare", a=_run(), probe_a=_probe("a"))
  change(study)
  with pytest.raises(ValueError, match=match):
    studies.validate_study(study)


def _transfer(**recipes):
  """A transfer study: the base run and ``recipes`` (name -> overrides), two seeds each."""
  runs = {name: _run(num_seeds=2, **overrides) for name, overrides in
          {"base": {}, **recipes}.items()}
  return _transfer_study(**runs)


def test_transfer_study_of_single_factor_recipes_is_accepted():
  study = _transfer(wd=dict(weight_decay=1e-3), ls={"loss.label_smoothing": 0.1},
                    longer=dict(steps=40, metrics_every=40, checkpoint_every=40))
  assert sorted(studies.validate_study(study)) == ["base", "longer", "ls", "wd"]


def test_transfer_recipe_changing_two_factors_is_refused_naming_them():
  study = _transfer(ls={"loss.label_smoothing": 0.1, "weight_decay": 5e-3})
  with pytest.raises(ValueError, match=r"runs\.ls changes 2 factors .*loss\.label_smoothing "
                     r"\(0\.0 -> 0\.1\), weight_decay"):
    studies.validate_study(study)


@pytest.mark.parametrize("recipe,seeds", [("base", 1), ("wd", 1), ("wd", 3)])
def test_transfer_recipe_without_the_bases_two_or_more_seeds_is_refused(recipe, seeds):
  study = _transfer(wd=dict(weight_decay=1e-3))
  study.runs[recipe].num_seeds = seeds
  with pytest.raises(ValueError, match=rf"runs\.{recipe} has num_seeds = {seeds}"):
    studies.validate_study(study)


@pytest.mark.parametrize("change,match", [
    (lambda s: s.update({"base": "nowhere"}), "base must name a run"),
    (lambda s: s.regimes.full.update({"target": "mars"}), "target must be one of"),
    (lambda s: s.regimes.few_shot.update({"shots": 1}), "shots >= probe.folds"),
])
def test_transfer_study_with_bad_regimes_is_refused(change, match):
  study = _transfer()
  change(study)
  with pytest.raises(ValueError, match=match):
    studies.validate_study(study)


def test_recipe_interval_is_exact_when_the_seeds_of_each_recipe_agree():
  """Seeds are resampled within recipes: identical seeds leave every recipe mean, hence
  rho, unchanged (resampling rows or recipes would move it)."""
  x = np.repeat(np.arange(5.0)[:, None], 3, 1)
  y = np.repeat(np.array([1.0, 0.0, 3.0, 2.0, 4.0])[:, None], 3, 1)
  rho = float(transfer._spearman(x.mean(1), y.mean(1)))
  assert rho == pytest.approx(0.8)
  assert transfer._spearman_interval(x, y) == pytest.approx((rho, rho))


def test_recipe_interval_spans_the_rhos_reachable_by_one_recipes_seeds():
  """Only recipe 2 has two different seeds (y 0.5 and 3.5, mean 2): a draw gives it mean
  0.5 (p 1/4), 2 (p 1/2) or 3.5 (p 1/4), so rho is 0.8, 1 or 0.8, and the 95% interval
  is exactly [0.8, 1]."""
  x = np.repeat(np.arange(4.0)[:, None], 2, 1)
  y = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 3.5], [3.0, 3.0]])
  assert transfer._spearman(x.mean(1), y.mean(1)) == pytest.approx(1.0)
  assert transfer._spearman_interval(x, y) == pytest.approx((0.8, 1.0))


def test_probe_accuracy_is_invariant_to_feature_scale():
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(3), 40)
  x = rng.normal(size=(120, 5)) + 2.0 * y[:, None]
  fit = lambda scale: transfer.probe_accuracy(
      (scale * x[::2], y[::2]), (scale * x[1::2], y[1::2]), cs=(0.1, 1.0), folds=2, max_iter=200)
  assert 0.9 < fit(1.0) == fit(1e3)


@pytest.mark.slow
def test_transfer_study_end_to_end(tmp_path):
  steps = dict(steps=200, metrics_every=200, checkpoint_every=200)
  study = _transfer_study(base=_run(num_seeds=2, **steps),
                          wd=_run(num_seeds=2, weight_decay=1e-2, **steps))
  studies.run_study(study, str(tmp_path))
  summary = json.loads(pathlib.Path(tmp_path / "summary.json").read_text())
  for regime in ("full", "few_shot"):
    assert {"rho", "interval", "n_recipes", "n_seeds", "probe"} <= set(summary["regimes"][regime])
    assert summary["regimes"][regime]["n_recipes"] == 2
    assert summary["regimes"][regime]["n_seeds"] == 2
  rows = [json.loads(line) for line in pathlib.Path(tmp_path / "transfer.jsonl").read_text().splitlines()]
  assert [(r["recipe"], r["seed"]) for r in rows] == [("base", 0), ("base", 1), ("wd", 0), ("wd", 1)]
  assert all(0 <= r["accuracy/few_shot"] <= 1 and 0 <= r["vci/other"] <= 1 for r in rows)
  assert os.path.getsize(tmp_path / "transfer.png") > 0


def test_steps_to_threshold_per_seed():
  records = [{"step": 0, "acc": [0.1, 0.2, 0.0]}, {"step": 50, "acc": [0.96, 0.5, 0.0]},
             {"step": 100, "acc": [0.9, 0.95, 0.0]}]
  assert compare.steps_to(records, "acc", 0.95) == [50, 100, None]
  assert compare.steps_to([{"step": 3, "acc": 0.97}], "acc", 0.95) == [3]  # one seed


@pytest.mark.slow
def test_compare_study_in_process(tmp_path):
  import ml_collections

  study = ml_collections.ConfigDict({"name": "tiny", "summary": "compare",
                                     "runs": {"a": _run(), "b": _run(lr=0.2)},
                                     "compare": {"slow": ("a",), "both": ("a", "b")}})
  summary = studies.run_study(study, str(tmp_path))
  assert summary["both"]["seeds"] == 2 and summary["slow"]["seeds"] == 1
  assert len(summary["both"]["steps_to_test_95"]) == 2
  assert json.loads(pathlib.Path(tmp_path / "summary.json").read_text()) == summary
  assert os.path.getsize(tmp_path / "compare.png") > 0
  # Running it again resumes every finished run: nothing is retrained or changed.
  before = tree_digest(tmp_path / "a" / "checkpoints")
  assert studies.run_study(study, str(tmp_path)) == summary
  assert tree_digest(tmp_path / "a" / "checkpoints") == before


def _points_study(summary, **runs):
  study = _study(summary, **runs)
  study.update({"alphas": (0.0, 0.5, 1.0), "sparsities": (0.0, 0.6),
                "finetune": {"steps": 4, "lr": 0.01}})
  return study


@pytest.mark.slow
def test_lmc_study_measures_the_path_between_the_two_members(tmp_path):
  from ncjax.analysis import load_run

  study = _points_study("lmc", a=_run(num_seeds=2, init_seed=0))
  summary = studies.run_study(study, str(tmp_path))
  rows = [json.loads(line) for line in pathlib.Path(tmp_path / "lmc.jsonl").read_text().splitlines()]
  assert [r["alpha"] for r in rows] == [0.0, 0.5, 1.0]
  # The end points are the trained members: the same accuracy and (recomputed BatchNorm
  # statistics aside, so loosely) the same loss as the run's own last record.
  _, logged = load_run(str(tmp_path / "a")).metric("test/accuracy")
  assert [rows[0]["test/accuracy"], rows[-1]["test/accuracy"]] == list(logged[-1])
  loss = [r["train/loss"] for r in rows]
  t = np.asarray([0.0, 0.5, 1.0])
  assert summary["a"]["train/loss"] == pytest.approx(
      max(np.asarray(loss) - ((1 - t) * loss[0] + t * loss[-1])), abs=1e-6)
  assert os.path.getsize(tmp_path / "lmc.png") > 0


@pytest.mark.slow
def test_pruning_study_prunes_measures_and_finetunes(tmp_path):
  study = _points_study("pruning", a=_run())
  studies.run_study(study, str(tmp_path))
  rows = [json.loads(line) for line in pathlib.Path(tmp_path / "pruning.jsonl").read_text().splitlines()]
  assert [(r["run"], r["sparsity"]) for r in rows] == [
      ("a pruned", 0.0), ("a pruned", 0.6), ("a + 4 fine-tune steps", 0.0),
      ("a + 4 fine-tune steps", 0.6)]
  assert rows[0]["weights/norm"] > rows[1]["weights/norm"]
  assert os.path.getsize(tmp_path / "pruning.png") > 0


@pytest.mark.parametrize("summary,change,match", [
    ("lmc", lambda s: s.runs.a.update({"num_seeds": 1}), "one member"),
    ("lmc", lambda s: s.update({"alphas": (0.5,)}), "alphas"),
    ("pruning", lambda s: s.update({"sparsities": (0.5, 1.0)}), "sparsities"),
    ("pruning", lambda s: s.finetune.update({"lr": -1.0}), "config.lr"),
])
def test_a_bad_points_study_is_refused(summary, change, match):
  study = _points_study(summary, a=_run(num_seeds=2))
  change(study)
  with pytest.raises(ValueError, match=match):
    studies.validate_study(study)
