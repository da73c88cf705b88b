"""Studies: run order from ``@run`` references, validation before anything runs, and a
tiny transfer study end to end through the CLI."""

import json
import os
import subprocess

import sys

import numpy as np
import pytest

from ncjax import studies
from tests.runs import ROOT, tree_digest
from tests.runs import study_probe as _probe
from tests.runs import study_run as _run
from tests.runs import transfer_study as _study


def test_runs_are_ordered_after_their_sources():
  study = _study(probe_a=_probe("a"), a=_run(), b=_run(), probe_b=_probe("b"))
  order = studies.validate_study(study)
  assert order.index("a") < order.index("probe_a") and order.index("b") < order.index("probe_b")


@pytest.mark.parametrize("change,match", [
    (lambda s: s.runs.probe_a.update({"init_from": "@nowhere"}), "not in it"),
    (lambda s: s.update({"pairs": (("a", "c"),)}), "not in the study"),
    (lambda s: s.runs.a.update({"steps": 0}), "runs.a: config.steps"),
    (lambda s: s.update({"summary": "table"}), "summary must be"),
    (lambda s: s.update({"compare": {"arm": ("a", "x")}}), "not in the study"),
])
def test_a_bad_study_is_refused_naming_the_problem(change, match):
  study = _study(a=_run(), probe_a=_probe("a"))
  change(study)
  with pytest.raises(ValueError, match=match):
    studies.validate_study(study)


@pytest.mark.slow
def test_transfer_study_end_to_end(tmp_path):
  config = tmp_path / "tiny_transfer.py"
  config.write_text(
      "import sys; sys.path.insert(0, %r)\n"
      "from tests.runs import study_probe as p, study_run as r, transfer_study as s\n"
      "def get_config():\n"
      "  return s(a=r(), c=r(steps=5), probe_a=p('a'), probe_c=p('c'))\n" % ROOT)
  cmd = [sys.executable, "-m", "ncjax", "study", "--config", str(config), "--workdir",
         str(tmp_path / "study")]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Spearman rho" in out.stdout
  rows = [json.loads(line) for line in open(tmp_path / "study" / "transfer.jsonl")]
  assert [r["source"] for r in rows] == ["a", "c"]
  assert all(0 <= r["probe_test_accuracy"] <= 1 and r["vci"] >= 0 for r in rows)
  summary = json.load(open(tmp_path / "study" / "summary.json"))
  assert set(summary["spearman"]) == {"vci", "nc1"}
  assert os.path.getsize(tmp_path / "study" / "transfer.png") > 0
  # The probes started from their sources' backbones: its config names the source.
  probe = json.load(open(tmp_path / "study" / "probe_a" / "config.json"))
  assert probe["init_from"] == str(tmp_path / "study" / "a")


def test_steps_to_threshold_per_seed():
  records = [{"step": 0, "acc": [0.1, 0.2, 0.0]}, {"step": 50, "acc": [0.96, 0.5, 0.0]},
             {"step": 100, "acc": [0.9, 0.95, 0.0]}]
  assert studies.steps_to(records, "acc", 0.95) == [50, 100, None]
  assert studies.steps_to([{"step": 3, "acc": 0.97}], "acc", 0.95) == [3]  # one seed


@pytest.mark.slow
def test_compare_study_in_process(tmp_path):
  import ml_collections

  study = ml_collections.ConfigDict({"name": "tiny", "summary": "compare",
                                     "runs": {"a": _run(), "b": _run(lr=0.2)},
                                     "compare": {"slow": ("a",), "both": ("a", "b")}})
  summary = studies.run_study(study, str(tmp_path))
  assert summary["both"]["seeds"] == 2 and summary["slow"]["seeds"] == 1
  assert len(summary["both"]["steps_to_test_95"]) == 2
  assert json.load(open(tmp_path / "summary.json")) == summary
  assert os.path.getsize(tmp_path / "compare.png") > 0
  # Running it again resumes every finished run: nothing is retrained or changed.
  before = tree_digest(tmp_path / "a" / "checkpoints")
  assert studies.run_study(study, str(tmp_path)) == summary
  assert tree_digest(tmp_path / "a" / "checkpoints") == before


def _points_study(summary, **runs):
  import ml_collections

  return ml_collections.ConfigDict({
      "name": "tiny", "summary": summary, "alphas": (0.0, 0.5, 1.0), "sparsities": (0.0, 0.6),
      "finetune": {"steps": 4, "lr": 0.01}, "runs": runs})


@pytest.mark.slow
def test_lmc_study_measures_the_path_between_the_two_members(tmp_path):
  from ncjax.analysis import load_run

  study = _points_study("lmc", a=_run(num_seeds=2, init_seed=0))
  summary = studies.run_study(study, str(tmp_path))
  rows = [json.loads(line) for line in open(tmp_path / "lmc.jsonl")]
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
  rows = [json.loads(line) for line in open(tmp_path / "pruning.jsonl")]
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
