"""The CLI never damages a run: every misuse is one or two lines on stderr, a non-zero
exit, and a run directory that is byte-for-byte unchanged."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.runs import ROOT, ncjax_cmd, read_log, tree_digest

SHORT = ["--config.steps=20", "--config.metrics_every=10", "--config.checkpoint_every=10",
         "--config.snapshots=2"]


def run(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "ncjax", *args], capture_output=True,
                        text=True, timeout=timeout)


@pytest.fixture(scope="module")
def existing(tmp_path_factory):
  """A finished tiny grokking run."""
  workdir = tmp_path_factory.mktemp("existing")
  subprocess.run(ncjax_cmd(workdir, *SHORT), check=True, capture_output=True, timeout=300)
  return workdir


def train_args(workdir, *extra, config=None):
  return ncjax_cmd(workdir, *SHORT, *extra)[3:] if config is None else [
      "train", "--config", config, "--workdir", str(workdir), *extra]


# Each case is a CLI process against one trained run: the fast tier keeps one (a changed
# config refused), the full suite runs them all.
FAST_MISUSE = ()


def _tiered(cases):
  return [pytest.param(*c, marks=() if c[0] in FAST_MISUSE else pytest.mark.slow) for c in cases]


@pytest.mark.parametrize("name,extra,message", _tiered([
    ("missing_config", dict(config="/nonexistent/config.py"), "config.py"),
    ("negative_steps", ["--config.steps=-1"], "config.steps must be an int >= 1"),
    ("unknown_key", ["--config.stepz=5"], "stepz"),
    ("zero_metrics_every", ["--config.metrics_every=0"], "config.metrics_every must be"),
    ("zero_checkpoint_every", ["--config.checkpoint_every=0"], "config.checkpoint_every"),
    ("train_fraction", ["--config.data.train_fraction=1.5"], "config.data.train_fraction"),
    ("other_seed", ["--config.seed=3"], r"different config: seed \(0 -> 3\)"),
    ("other_lr", ["--config.lr=0.01"], "different config: lr"),
    ("other_fraction", ["--config.data.train_fraction=0.4"], "data.train_fraction"),
    ("other_model_size", ["--config.model.kwargs.hidden_dim=64"], "model.kwargs.hidden_dim"),
    ("missing_init_from", ["--config.init_from=/nonexistent"], "no checkpoints under"),
    ("bad_loss_weight", ["--config.loss.cma_lam=2"], "config.loss.cma_lam must be"),
]))
def test_misuse_is_one_line_and_leaves_the_run_untouched(existing, name, extra, message):
  before = tree_digest(existing)
  if isinstance(extra, dict):
    args = train_args(existing, *SHORT, config=extra["config"])
  else:
    args = train_args(existing, *extra)
  result = run(*args)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert 1 <= len(lines) <= 2 and lines[0].startswith("ncjax: "), result.stderr[-2000:]
  assert any(re.search(message, line) for line in lines), lines
  assert tree_digest(existing) == before


@pytest.mark.slow
def test_resume_with_a_changed_model_is_refused_and_moves_nothing(existing):
  before = tree_digest(existing)
  result = run(*train_args(existing, "--config.model.kwargs.hidden_dim=48",
                           "--allow_change=model.kwargs.hidden_dim"))
  assert result.returncode == 2, result.stderr[-2000:]
  assert re.search(r"another model .*: params/Dense_0/bias is \(1, 32\) there, \(1, 48\) here",
                   result.stderr), result.stderr[-2000:]
  assert tree_digest(existing) == before


@pytest.mark.slow
def test_analyze_of_a_changed_model_names_it_not_corrupt(existing, tmp_path):
  shutil.copytree(existing, tmp_path / "run")
  config = json.loads(pathlib.Path(tmp_path / "run" / "config.json").read_text())
  config["model"]["kwargs"]["hidden_dim"] = 48
  (tmp_path / "run" / "config.json").write_text(json.dumps(config))
  before = tree_digest(tmp_path / "run")
  result = run("analyze", str(tmp_path / "run"))
  assert result.returncode == 2, result.stderr[-2000:]
  assert "another model" in result.stderr and "corrupt" not in result.stderr, result.stderr
  assert tree_digest(tmp_path / "run") == before


def test_unwritable_workdir_is_one_line(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  result = run(*train_args(blocker / "run"))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      line for line in result.stderr.strip().splitlines() if line.startswith("ncjax: cannot")]


@pytest.mark.slow
def test_overwrite_starts_afresh_and_allow_change_resumes(tmp_path):
  subprocess.run(ncjax_cmd(tmp_path, *SHORT), check=True, capture_output=True, timeout=300)
  result = run(*train_args(tmp_path, "--config.seed=1", "--overwrite"))
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads(pathlib.Path(tmp_path / "config.json").read_text())["seed"] == 1
  assert [r["step"] for r in read_log(tmp_path)] == [0, 1, 10, 20]
  result = run(*train_args(tmp_path, "--config.seed=1", "--config.lr=0.002",
                           "--allow_change=lr", "--config.steps=30"))
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads(pathlib.Path(tmp_path / "config.json").read_text())["lr"] == 0.002


def test_usage_errors(tmp_path):
  for args in (["train"], ["analyze"], ["frobnicate"]):
    result = run(*args)
    assert result.returncode == 2 and "usage: ncjax" in result.stderr
  result = run("analyze", str(tmp_path))
  assert result.returncode == 2
  assert "not an ncjax run directory" in result.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_subcommands_and_their_flags(flag):
  result = run(flag)
  assert result.returncode == 0, result.stderr[-2000:]
  for word in ("train", "study", "analyze", "--workdir", "--allow_change", "--split"):
    assert word in result.stdout


def test_train_help_lists_the_config_keys_with_defaults_and_comments():
  result = run("train", "--help")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "--overwrite" in result.stdout
  assert "  lr = 0.001  # peak learning rate" in result.stdout.splitlines()


def test_train_help_shows_the_config_files_own_defaults():
  result = run("train", "--config", os.path.join(ROOT, "experiments", "digits.py"), "-h")
  assert result.returncode == 0, result.stderr[-2000:]
  assert re.search(r"^  model.name = 'cnn'", result.stdout, re.M), result.stdout


def test_study_help_lists_the_study_configs_keys():
  result = run("study", "--help", "--config",
               os.path.join(ROOT, "experiments", "vci_transfer.py"))
  assert result.returncode == 0, result.stderr[-2000:]
  assert re.search(r"^  runs\.base\.", result.stdout, re.M), result.stdout


def test_analyze_help_names_its_flags():
  result = run("analyze", "--help")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "--metrics" in result.stdout and "--chunk_size" in result.stdout


@pytest.mark.slow
def test_analyze_takes_the_run_directory_as_workdir_too(existing, tmp_path):
  shutil.copytree(existing, tmp_path / "run")
  result = run("analyze", "--workdir", str(tmp_path / "run"))
  assert result.returncode == 0, result.stderr[-2000:]
  assert os.path.exists(tmp_path / "run" / "analysis.jsonl")


def test_analyze_refuses_two_different_run_directories(tmp_path):
  result = run("analyze", str(tmp_path / "a"), "--workdir", str(tmp_path / "b"))
  assert result.returncode == 2 and "usage: ncjax" in result.stderr


@pytest.mark.slow
def test_study_and_train_refuse_each_others_configs(tmp_path):
  study = run("study", "--config", os.path.join(ROOT, "experiments", "grokking.py"),
              "--workdir", str(tmp_path / "s"))
  assert study.returncode == 2 and "not a study config" in study.stderr, study.stderr[-2000:]
  train = run("train", "--config", os.path.join(ROOT, "experiments", "vci_transfer.py"),
              "--workdir", str(tmp_path / "t"))
  assert train.returncode == 2 and "use `ncjax study`" in train.stderr, train.stderr[-2000:]
  assert not os.path.exists(tmp_path / "s") and not os.path.exists(tmp_path / "t")


EXPERIMENTS = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "experiments"))
                     if f.endswith(".py") and f != "common.py")  # common: shared recipes
ON_FASHION_MNIST = ("cma_finetune", "info_regularizer")  # get_config(data)


@pytest.mark.parametrize("name", EXPERIMENTS + [f"{n}:fashion_mnist" for n in ON_FASHION_MNIST])
def test_every_experiment_config_is_valid(name):
  from ncjax.studies import validate_study
  from ncjax.tasks import validate
  from tests.runs import experiment_config

  config = experiment_config(name)
  if "runs" in config:
    validate_study(config)
  else:
    validate(config)
