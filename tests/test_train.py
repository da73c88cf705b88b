"""Data, models, and the training job end to end (kill/resume, NaN, Ctrl-C, typos)."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ncjax.data import OPERATIONS, modular_arithmetic
from ncjax.models import EmbedMLP, Transformer, head_weights
from ncjax.train.checkpoints import snapshot_steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.modulus=23", "--config.model_kwargs.embed_dim=16",
        "--config.model_kwargs.hidden_dim=32", "--config.steps=120", "--config.metrics_every=20",
        "--config.checkpoint_every=20", "--config.snapshots=6", "--config.sample_size=64"]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_modular_labels(operation):
  p = 11
  train, test = modular_arithmetic(p, operation, 0.4, seed=3)
  x = np.r_[train.inputs, test.inputs]
  y = np.r_[train.labels, test.labels]
  python_op = {"add": lambda a, b: (a + b) % p, "sub": lambda a, b: (a - b) % p,
               "mul": lambda a, b: (a * b) % p, "div": lambda a, b: next(
                   c for c in range(p) if (c * b) % p == a),
               "x2xyy2": lambda a, b: (a * a + a * b + b * b) % p}[operation]
  assert all(python_op(a, b) == label for (a, b, _), label in zip(x, y))
  assert len(y) == (p * (p - 1) if operation == "div" else p * p)
  assert len(np.unique(x[:, :2], axis=0)) == len(y)  # every pair once
  assert (x[:, 2] == p).all()
  assert len(train.labels) == round(0.4 * len(y))


def test_split_depends_on_seed_only():
  a, _ = modular_arithmetic(13, "add", 0.5, seed=1)
  b, _ = modular_arithmetic(13, "add", 0.5, seed=1)
  c, _ = modular_arithmetic(13, "add", 0.5, seed=2)
  np.testing.assert_array_equal(a.inputs, b.inputs)
  assert not np.array_equal(a.inputs, c.inputs)


@pytest.mark.parametrize("kwargs,message", [
    (dict(operation="pow"), "operation must be one of"),
    (dict(operation="div", modulus=12), "modulus must be prime"),
    (dict(train_fraction=1.0), "train_fraction"),
])
def test_bad_task(kwargs, message):
  args = dict(modulus=7, operation="add", train_fraction=0.5, seed=0) | kwargs
  with pytest.raises(ValueError, match=message):
    modular_arithmetic(**args)


@pytest.mark.parametrize("module", [EmbedMLP(8, 7, 4, 16), Transformer(8, 7, 16, 2, 32)])
def test_logits_are_features_times_head(module):
  tokens = jnp.asarray(modular_arithmetic(7, "add", 0.5, 0)[0].inputs)
  params = module.init(jax.random.key(0), tokens)["params"]
  logits, features = module.apply({"params": params}, tokens)
  w, b = head_weights(params)
  assert logits.shape == (len(tokens), 7) and w.shape == (7, features.shape[1])
  np.testing.assert_allclose(logits, features @ w.T + b, rtol=1e-5, atol=1e-5)


def ncjax_cmd(workdir, *extra):
  return [sys.executable, "-m", "ncjax", "train", "--config",
          os.path.join(ROOT, "experiments", "grokking.py"), "--workdir", str(workdir),
          *TINY, *extra]


def final_params(workdir):
  mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  step = mngr.latest_step()
  state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  mngr.close()
  return step, state["params"]


def read_log(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  subprocess.run(ncjax_cmd(workdir), check=True, capture_output=True)
  return workdir


@pytest.mark.slow
def test_run_writes_outputs(uninterrupted):
  records = read_log(uninterrupted)
  steps = [r["step"] for r in records]
  assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == 120
  for key in ("train/loss", "train/accuracy", "test/loss", "test/accuracy", "collapse/mir",
              "collapse/hdr", "entropy/head", "entropy/means", "sample/mir", "collapse/vci"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert records[-1]["train/accuracy"] > records[0]["train/accuracy"]
  assert json.load(open(uninterrupted / "config.json"))["modulus"] == 23
  with open(uninterrupted / "curves.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  saved = sorted(int(s) for s in os.listdir(uninterrupted / "checkpoints") if s.isdigit())
  trajectory = snapshot_steps(120, 6)
  assert len(trajectory) == 7 and set(trajectory) <= set(saved)  # snapshots kept forever
  assert 100 in saved and 20 not in saved  # only the latest resume points survive


@pytest.mark.slow
def test_sigkill_then_resume_is_exact(uninterrupted, tmp_path):
  proc = subprocess.Popen(ncjax_cmd(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpt = tmp_path / "checkpoints"
  deadline = time.time() + 120
  while time.time() < deadline:
    if ckpt.exists() and any(s.isdigit() and 40 <= int(s) < 120 for s in os.listdir(ckpt)):
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert read_log(tmp_path)[-1]["step"] < 120, "the run finished before it was killed"
  subprocess.run(ncjax_cmd(tmp_path), check=True, capture_output=True)
  step, params = final_params(tmp_path)
  want_step, want = final_params(uninterrupted)
  assert step == want_step == 120
  jax.tree.map(np.testing.assert_array_equal, params, want)  # bitwise
  assert read_log(tmp_path) == read_log(uninterrupted)


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path):
  run = subprocess.run(ncjax_cmd(tmp_path, "--config.lr=1e12"), capture_output=True, text=True)
  assert run.returncode != 0
  assert "training loss is" in run.stderr and "at step" in run.stderr, run.stderr[-2000:]
  _, params = final_params(tmp_path)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


@pytest.mark.slow
def test_ctrl_c_saves_and_exits(tmp_path):
  proc = subprocess.Popen(ncjax_cmd(tmp_path, "--config.steps=100000"), stderr=subprocess.PIPE,
                          text=True)
  while not (tmp_path / "metrics.jsonl").exists() or len(read_log(tmp_path)) < 3:
    time.sleep(0.1)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  step, _ = final_params(tmp_path)
  assert f"saved step {step}" in err
  assert read_log(tmp_path)[-1]["step"] == step


def test_config_typo_is_an_error_before_compiling(tmp_path):
  run = subprocess.run(ncjax_cmd(tmp_path, "--config.stepz=5"), capture_output=True, text=True)
  assert run.returncode != 0
  assert "stepz" in run.stderr
  assert not (tmp_path / "checkpoints").exists()
