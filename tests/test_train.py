"""Data, models, and the training job end to end (kill/resume, NaN, Ctrl-C, typos)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax.data import OPERATIONS, algorithmic, num_classes
from ncjax.data.algorithmic import S5
from ncjax.models import EmbedMLP, FlaxTransformer, Transformer, head_weights
from ncjax.train.checkpoints import snapshot_steps
from tests.runs import final_params, ncjax_cmd, read_log


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_modular_labels(operation):
  p = 11
  train, test = algorithmic(operation, p, 0.4, seed=3)
  x = np.r_[train.inputs, test.inputs]
  y = np.r_[train.labels, test.labels]
  divide = lambda a, b: next(c for c in range(p) if (c * b) % p == a)
  python_op = {"add": lambda a, b: (a + b) % p, "sub": lambda a, b: (a - b) % p,
               "mul": lambda a, b: (a * b) % p, "div": divide,
               "div_or_sub": lambda a, b: divide(a, b) if b % 2 else (a - b) % p,
               "x2y2": lambda a, b: (a * a + b * b) % p,
               "x2xyy2": lambda a, b: (a * a + a * b + b * b) % p,
               "x2xyy2x": lambda a, b: (a * a + a * b + b * b + a) % p,
               "x3xy": lambda a, b: (a**3 + a * b) % p,
               "x3xy2y": lambda a, b: (a**3 + a * b * b + b) % p}[operation]
  assert all(python_op(a, b) == label for (a, b, _), label in zip(x, y, strict=True))
  assert len(y) == (p * (p - 1) if operation == "div" else p * p)
  assert len(np.unique(x[:, :2], axis=0)) == len(y)  # every pair once
  assert (x[:, 2] == p).all()
  assert len(train.labels) == round(0.4 * len(y))


def test_s5_labels_are_compositions_computed_by_hand():
  train, test = algorithmic("s5", 0, 0.5, seed=1)
  x, y = np.r_[train.inputs, test.inputs], np.r_[train.labels, test.labels]
  assert num_classes("s5", 0) == 120 and len(y) == 120 * 120 and (x[:, 2] == 120).all()
  perms = [tuple(p) for p in S5]
  assert len(set(perms)) == 120
  for (a, b, _), label in zip(x[::97], y[::97], strict=True):
    first, then = perms[b], perms[a]
    assert perms[label] == tuple(then[first[i]] for i in range(5))  # (a o b)(i) = a(b(i))
  identity = perms.index((0, 1, 2, 3, 4))
  assert all(label == b for (a, b, _), label in zip(x, y, strict=True) if a == identity)
  # S5 is not abelian: some a o b != b o a.
  table = dict(zip(map(tuple, x[:, :2]), y, strict=True))
  assert any(table[(a, b)] != table[(b, a)] for a, b in table)


def test_split_depends_on_seed_only():
  a, _ = algorithmic("add", 13, 0.5, seed=1)
  b, _ = algorithmic("add", 13, 0.5, seed=1)
  c, _ = algorithmic("add", 13, 0.5, seed=2)
  np.testing.assert_array_equal(a.inputs, b.inputs)
  assert not np.array_equal(a.inputs, c.inputs)


@pytest.mark.parametrize("kwargs,message", [
    (dict(operation="pow"), "operation must be one of"),
    (dict(operation="div", modulus=12), "modulus must be prime"),
    (dict(operation="div_or_sub", modulus=9), "modulus must be prime"),
    (dict(train_fraction=1.0), "train_fraction"),
])
def test_bad_task(kwargs, message):
  args = dict(modulus=7, operation="add", train_fraction=0.5, seed=0) | kwargs
  with pytest.raises(ValueError, match=message):
    algorithmic(**args)


@pytest.mark.parametrize("module", [EmbedMLP(8, 7, 4, 16), *(
    pytest.param(m, marks=pytest.mark.slow)
    for m in (Transformer(8, 7, 16, 2, 32), FlaxTransformer(8, 7, 16, 2, 32)))])
def test_logits_are_features_times_head(module):
  tokens = jnp.asarray(algorithmic("add", 7, 0.5, 0)[0].inputs)
  params = module.init(jax.random.key(0), tokens)["params"]
  logits, features = module.apply({"params": params}, tokens)
  w, b = head_weights(params)
  assert logits.shape == (len(tokens), 7) and w.shape == (7, features.shape[1])
  np.testing.assert_allclose(logits, features @ w.T + b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_transformer_is_nanda_et_al_full_causal_forward():
  """The paper model against a float64 NumPy forward of the reference architecture: every
  position through causal attention and the MLP, read out at the last; no biases but the
  MLP's, initialisation scales 1/sqrt(d_model) (unembedding 1/sqrt(vocab))."""
  model = Transformer(vocab_size=24, num_classes=23, d_model=32, num_heads=4, mlp_dim=64)
  tokens = jnp.asarray(algorithmic("add", 23, 0.5, 0)[0].inputs[:50])
  params = jax.tree.map(lambda x: np.asarray(x, np.float64),
                        model.init(jax.random.key(1), tokens)["params"])
  assert "bias" not in params["head"]
  assert sorted(params) == ["embed", "head", "mlp_in", "mlp_out", "out", "pos_embed", "qkv"]
  big = Transformer(vocab_size=114, num_classes=113).init(jax.random.key(0), tokens)["params"]
  for name, leaf, std in [("embed", big["embed"], 128**-0.5), ("qkv", big["qkv"], 128**-0.5),
                          ("mlp_out", big["mlp_out"]["kernel"], 128**-0.5),
                          ("head", big["head"]["kernel"], 114**-0.5)]:
    np.testing.assert_allclose(np.std(leaf), std, rtol=0.05, err_msg=name)
  assert not np.any(big["mlp_in"]["bias"])

  x = params["embed"][np.asarray(tokens)] + params["pos_embed"]  # (n, 3, d)
  q, k, v = (np.einsum("ntd,dhk->nhtk", x, w) for w in params["qkv"])
  scores = np.einsum("nhqk,nhtk->nhqt", q, k) / np.sqrt(8)
  scores = np.where(np.tril(np.ones((3, 3), bool)), scores, -np.inf)
  attn = np.exp(scores - scores.max(-1, keepdims=True))
  attn /= attn.sum(-1, keepdims=True)
  x = x + np.einsum("nhqt,nhtk,hkd->nqd", attn, v, params["out"])
  mlp = lambda x, p: x @ p["kernel"] + p["bias"]
  x = x + mlp(np.maximum(mlp(x, params["mlp_in"]), 0), params["mlp_out"])
  want = x[:, -1] @ params["head"]["kernel"]
  logits, features = model.apply({"params": params}, tokens)
  np.testing.assert_allclose(features, x[:, -1], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-5)


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
              "collapse/hdr", "collapse/entropy_head", "collapse/entropy_means", "sample/mir",
              "collapse/vci", "test_collapse/nc1", "sample/entropy_features"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert records[-1]["train/accuracy"] > records[0]["train/accuracy"]
  assert json.loads(pathlib.Path(uninterrupted / "config.json").read_text())["data"]["modulus"] == 23
  with open(uninterrupted / "curves.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  saved = sorted(int(s) for s in os.listdir(uninterrupted / "checkpoints") if s.isdigit())
  trajectory = snapshot_steps(120, 6)
  assert len(trajectory) == 7 and set(trajectory) <= set(saved)  # snapshots kept forever
  assert 100 in saved and 20 not in saved  # only the latest resume points survive


def _wait(condition, seconds=180):
  deadline = time.time() + seconds
  while not condition():
    assert time.time() < deadline, "timed out"
    time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_at_a_snapshot_then_torn_log_then_resume_is_exact(uninterrupted, tmp_path):
  """Killed once checkpoint 46 (a trajectory snapshot, not a metrics_every step) exists,
  with a torn line appended to the log: the resumed run equals the uninterrupted one
  bit for bit, and every metrics line is present exactly once."""
  proc = subprocess.Popen(ncjax_cmd(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  _wait(lambda: (tmp_path / "checkpoints" / "46").exists())
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  assert read_log(tmp_path)[-1]["step"] < 120, "the run finished before it was killed"
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 99, "train/lo')  # a crash mid-write
  subprocess.run(ncjax_cmd(tmp_path), check=True, capture_output=True, timeout=300)
  step, params = final_params(tmp_path)
  want_step, want = final_params(uninterrupted)
  assert step == want_step == 120
  jax.tree.map(np.testing.assert_array_equal, params, want)  # bitwise
  assert read_log(tmp_path) == read_log(uninterrupted)


@pytest.mark.slow
def test_extending_a_run_keeps_its_snapshots(uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  before = {int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()}
  subprocess.run(ncjax_cmd(workdir, "--config.steps=200"), check=True, capture_output=True,
                 timeout=300)
  after = {int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()}
  kept = set(snapshot_steps(120, 6))
  assert kept <= after and {s for s in snapshot_steps(200, 6) if s > 120} <= after
  assert before - after <= {100}  # only resume points (not snapshots) may go
  steps = [r["step"] for r in read_log(workdir)]
  assert steps == sorted(set(steps)) and steps[-1] == 200


@pytest.mark.slow
def test_nan_stop_names_a_finite_checkpoint_and_resumes_with_a_smaller_lr(tmp_path):
  run = subprocess.run(ncjax_cmd(tmp_path, "--config.lr=1e12"), capture_output=True, text=True,
                       timeout=300)
  assert run.returncode == 1
  assert "training loss is" in run.stderr and "at step" in run.stderr, run.stderr[-2000:]
  named = int(run.stderr.split("last good checkpoint is step ")[1].split(".")[0])
  step, params = final_params(tmp_path)
  assert step == named
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  run = subprocess.run(ncjax_cmd(tmp_path, "--config.lr=1e-3", "--allow_change=lr"),
                       capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(final_params(tmp_path)[1]))


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_and_its_line_is_kept_once(tmp_path):
  proc = subprocess.Popen(ncjax_cmd(tmp_path, "--config.steps=100000"), stderr=subprocess.PIPE,
                          text=True)
  _wait(lambda: (tmp_path / "metrics.jsonl").exists() and len(read_log(tmp_path)) >= 3)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err[-2000:]
  step, _ = final_params(tmp_path)
  assert f"saved step {step}" in err
  assert read_log(tmp_path)[-1]["step"] == step
  subprocess.run(ncjax_cmd(tmp_path), check=True, capture_output=True, timeout=300)
  steps = [r["step"] for r in read_log(tmp_path)]
  assert steps == sorted(set(steps)) and step in steps and steps[-1] == 120


def _flip_bytes(directory, count=64):
  """Flips ``count`` bytes in the middle of the largest file under ``directory``."""
  files = [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    f.seek(0)
    f.write(data)


@pytest.mark.slow
def test_corrupt_checkpoint_is_named_and_skipped(uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  _flip_bytes(workdir / "checkpoints" / "46" / "state")
  (workdir / "checkpoints" / "100" / "meta" / "metadata").write_text('{"metrics": {"step"')
  run = subprocess.run([sys.executable, "-m", "ncjax", "analyze", str(workdir)],
                       capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  assert "skipping step 46" in run.stderr and "skipping step 100" in run.stderr
  analysed = [json.loads(line)["step"] for line in pathlib.Path(workdir / "analysis.jsonl").read_text().splitlines()]
  assert 46 not in analysed and 100 not in analysed and 120 in analysed
  # Resume skips (and moves aside) every corrupt checkpoint down to an intact one (18),
  # then reproduces the uninterrupted run.
  _flip_bytes(workdir / "checkpoints" / "120" / "state")
  run = subprocess.run(ncjax_cmd(workdir), capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  for step in (120, 100, 46):
    assert f"checkpoint {step} is corrupt" in run.stderr
    assert (workdir / "corrupt" / str(step)).is_dir()
  jax.tree.map(np.testing.assert_array_equal, final_params(workdir)[1],
               final_params(uninterrupted)[1])
  assert read_log(workdir) == read_log(uninterrupted)


def test_config_typo_is_an_error_before_compiling(tmp_path):
  run = subprocess.run(ncjax_cmd(tmp_path, "--config.stepz=5"), capture_output=True, text=True)
  assert run.returncode != 0
  assert "stepz" in run.stderr
  assert not (tmp_path / "checkpoints").exists()


def test_a_key_added_since_the_run_started_counts_as_its_default(tmp_path):
  from ncjax.train import rundir
  from ncjax.train.config import base_config

  config = base_config()
  rundir.prepare(config, str(tmp_path))
  stored = json.loads(pathlib.Path(tmp_path / "config.json").read_text())
  del stored["data"]["key_frequencies"]  # a run made before the key existed
  (tmp_path / "config.json").write_text(json.dumps(stored))
  rundir.prepare(config, str(tmp_path))  # resumes
  config.data.key_frequencies = 3
  with pytest.raises(rundir.RunDirError, match="data.key_frequencies"):
    rundir.prepare(config, str(tmp_path))
