"""Studies: run order from ``@run`` references, validation before anything runs, and a
tiny transfer study end to end through the CLI."""

import json
import os
import subprocess

import sys

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
      "  return s(a=r(), b=r(**{'loss.label_smoothing': 0.3}), c=r(steps=5),\n"
      "           probe_a=p('a'), probe_b=p('b'), probe_c=p('c'))\n" % ROOT)
  cmd = [sys.executable, "-m", "ncjax", "study", "--config", str(config), "--workdir",
         str(tmp_path / "study")]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Spearman rho" in out.stdout
  rows = [json.loads(line) for line in open(tmp_path / "study" / "transfer.jsonl")]
  assert [r["source"] for r in rows] == ["a", "b", "c"]
  assert all(0 <= r["probe_test_accuracy"] <= 1 and r["vci"] >= 0 for r in rows)
  summary = json.load(open(tmp_path / "study" / "summary.json"))
  assert set(summary["spearman"]) == {"vci", "nc1"}
  assert os.path.getsize(tmp_path / "study" / "transfer.png") > 0
  # The probes started from their sources' backbones: its config names the source.
  probe = json.load(open(tmp_path / "study" / "probe_a" / "config.json"))
  assert probe["init_from"] == str(tmp_path / "study" / "a")
  # Running it again resumes every finished run: nothing is retrained or changed.
  before = tree_digest(tmp_path / "study" / "a" / "checkpoints")
  again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert again.returncode == 0, again.stderr[-2000:]
  assert tree_digest(tmp_path / "study" / "a" / "checkpoints") == before


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
