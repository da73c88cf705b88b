"""Supervised classification end to end: models with BatchNorm, the whole-split streamed
metrics against float64, TFDS mock data through the real path, exact resume, analyze."""

import os
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax.analysis.analyze import analyze
from ncjax.data import images
from ncjax.models import CNN, ResNet18, WideResNet, head_weights
from ncjax.tasks import make_task
from ncjax.tasks.classification import Classification
from ncjax.train import train
from ncjax.train.config import base_config
from ncjax.train.state import create_states
from tests import reference as ref
from tests.runs import experiment_config, final_params, ncjax_cmd, read_log

TINY_DIGITS = ["--config.steps=60", "--config.metrics_every=20", "--config.checkpoint_every=20",
               "--config.snapshots=3", "--config.optim.warmup_steps=10",
               "--config.model.kwargs.channels=(8,16)", "--config.model.kwargs.features=32"]


def digits_config(**overrides):
  c = base_config()
  c.task = "classification"
  c.model.name = "cnn"
  c.model.kwargs = {"channels": (8, 16), "features": 32}
  c.optim.name = "sgd"
  c.update(dict(batch_size=64, lr=0.05, weight_decay=5e-4, steps=40, metrics_every=20,
                checkpoint_every=20, snapshots=2, sample_size=128) | overrides)
  return c


@pytest.mark.parametrize("module", [CNN(10, (4, 8), 16), *(
    pytest.param(m, marks=pytest.mark.slow) for m in (ResNet18(10, width=4),
                                                      WideResNet(10, depth=10, width=1)))])
def test_logits_are_features_times_head_and_batchnorm_updates(module):
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 3))
  variables = module.init(jax.random.key(1), x)
  (logits, features), updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
  w, b = head_weights(variables["params"])
  np.testing.assert_allclose(logits, features @ w.T + b, rtol=1e-5, atol=1e-5)
  moved = jax.tree.map(lambda a, c: not np.allclose(a, c), updates["batch_stats"],
                       variables["batch_stats"])
  assert any(jax.tree.leaves(moved))
  eval_logits, _ = module.apply(variables, x, train=False)  # running averages: no mutation
  assert eval_logits.shape == (6, 10)


@pytest.mark.slow
def test_streamed_whole_split_metrics_equal_float64_one_shot():
  config = digits_config(num_seeds=2)
  task = Classification(config)
  states = create_states(config, task.model, task.example_inputs, task.mesh)
  got = task.evaluate(states)
  data = images.digits()
  for i in range(2):
    state = jax.tree.map(lambda x, i=i: x[i], states)
    train = None  # (h, y) of the train split: the centres of NC4 on both splits
    for split, prefix in (("train", "collapse"), ("test", "test_collapse")):
      batch = next(images.eval_batches(data, split, 2000))
      logits, h = task.model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                   batch.inputs[batch.mask], train=False)
      y = batch.labels[batch.mask]
      train = train or (h, y)
      w, b = (np.asarray(a) for a in head_weights(state.params))
      check = lambda key, want, prefix=prefix, i=i: np.testing.assert_allclose(
          got[f"{prefix}/{key}"][i], want, rtol=1e-4, atol=1e-6, err_msg=f"{prefix}/{key}")
      for name in ("nc1", "cdnv", "vci"):
        check(name, getattr(ref, name)(h, y, 10))
      for key, value in ref.nc2(h, y, 10, w).items():
        check(key, value)
      check("nc3", ref.nc3(h, y, 10, w))
      check("nc4", ref.nc4(h, y, 10, w, b, centres=train))
      m = ref.class_moments(h, y, 10)["m"]
      check("mir", ref.mir(w, m))
      check("hdr", ref.hdr(w, m))
      np.testing.assert_allclose(got[f"{split}/accuracy"][i],
                                 np.mean(np.argmax(logits, 1) == y), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10_wrn", "cifar100_wrn"])
def test_cifar_config_runs_on_tfds_mock_data_through_data_source_and_grain(tmp_path, name):
  tfds = pytest.importorskip("tensorflow_datasets")
  config = experiment_config(name)
  config.model.kwargs.update({"depth": 10, "width": 1})
  config.update(dict(steps=4, batch_size=8, metrics_every=2, checkpoint_every=2, snapshots=2,
                     sample_size=16))
  config.data.eval_batch_size = 16
  config.layer_metrics = name == "cifar100_wrn"  # the WRN's per-block metrics too
  with tfds.testing.mock_data(num_examples=24):
    records = train(make_task(config), tmp_path)
  assert [r["step"] for r in records] == [0, 1, 2, 4]
  assert all(np.isfinite(r["test_collapse/nc1"]) and np.isfinite(r["collapse/vci"])
             for r in records)
  layers = sorted(k for k in records[-1] if k.startswith("layer"))
  assert len(layers) == (15 if config.layer_metrics else 0)  # 3 blocks x 5 metrics
  assert all(np.isfinite(records[-1][k]) for k in layers)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("digits")
  subprocess.run(ncjax_cmd(workdir, config="digits.py", tiny=TINY_DIGITS), check=True,
                 capture_output=True, timeout=600)
  return workdir


@pytest.mark.slow
def test_digits_sigkill_then_resume_is_exact(digits_run, tmp_path):
  proc = subprocess.Popen(ncjax_cmd(tmp_path, config="digits.py", tiny=TINY_DIGITS),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpt = tmp_path / "checkpoints"
  deadline = time.time() + 300
  while time.time() < deadline and not (
      ckpt.exists() and any(s.isdigit() and 20 <= int(s) < 60 for s in os.listdir(ckpt))):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  assert read_log(tmp_path)[-1]["step"] < 60, "the run finished before it was killed"
  subprocess.run(ncjax_cmd(tmp_path, config="digits.py", tiny=TINY_DIGITS), check=True,
                 capture_output=True, timeout=600)
  (step, params), (want_step, want) = final_params(tmp_path), final_params(digits_run)
  assert step == want_step == 60
  jax.tree.map(np.testing.assert_array_equal, params, want)  # bitwise
  assert read_log(tmp_path) == read_log(digits_run)


@pytest.mark.slow
def test_analyze_of_a_classification_run_equals_the_log(digits_run):
  # Batched and unbatched matmuls round differently; float32 amplifies that in RankMe
  # of offset (post-ReLU) features and in the sample-level MIR/HDR (differences of
  # entropies, ~1e-4). RankMe takes singular values as square roots of the eigenvalues of
  # the uncentred second moment: an eigenvalue's absolute error eps * lambda_max becomes
  # a relative error eps * (sigma_max / sigma)^2 / 2 of a small singular value; 3.8e-3 was
  # seen on a loaded machine, so 1e-2.
  rtol = {"collapse/effective_rank": 1e-2, "test_collapse/effective_rank": 1e-2,
          "sample/mir": 1e-3, "sample/hdr": 1e-3}
  logged = {r["step"]: r for r in read_log(digits_run)}
  records = analyze(str(digits_run), chunk_size=2)
  assert [r["step"] for r in records] == sorted(
      int(s) for s in os.listdir(digits_run / "checkpoints") if s.isdigit())
  for record in records:
    want = logged[record["step"]]
    assert record.keys() == want.keys()
    for key in record.keys() - {"step"}:
      np.testing.assert_allclose(record[key], want[key], rtol=rtol.get(key, 1e-4), atol=1e-6,
                                 err_msg=key)


@pytest.mark.slow
def test_layer_metrics_are_each_blocks_pooled_features_against_float64():
  config = digits_config(layer_metrics=True)
  task = Classification(config)
  states = create_states(config, task.model, task.example_inputs, task.mesh)
  got = task.evaluate(states)
  state = jax.tree.map(lambda x: x[0], states)
  batch = next(images.eval_batches(images.digits(), "train", 2000))
  _, exposed = task.model.apply({"params": state.params, "batch_stats": state.batch_stats},
                                batch.inputs[batch.mask], train=False, mutable=["intermediates"])
  blocks = exposed["intermediates"]["layers"]
  assert [b.shape[1] for b in blocks] == [8, 16]  # the CNN's channels, pooled
  y = batch.labels[batch.mask]
  for i, h in enumerate(blocks, start=1):
    h = np.asarray(h, np.float64)
    want = {"nc1": ref.nc1(h, y, 10), "vci": ref.vci(h, y, 10), "cdnv": ref.cdnv(h, y, 10),
            "effective_rank": ref.effective_rank(h),
            "entropy_means": ref.matrix_entropy(ref.class_moments(h, y, 10)["m"])}
    for key, value in want.items():
      np.testing.assert_allclose(got[f"layer{i}/{key}"][0], value, rtol=2e-4, atol=1e-6,
                                 err_msg=f"layer{i}/{key}")
  assert not any(k.startswith("layer") for k in Classification(digits_config()).evaluate(states))


@pytest.mark.parametrize("module,channels", [
    pytest.param(WideResNet(10, depth=16, width=1), [16] * 2 + [32] * 2 + [64] * 2,
                 marks=pytest.mark.slow),
    (ResNet18(10, width=2), [2] * 2 + [4] * 2 + [8] * 2 + [16] * 2)])
def test_residual_models_expose_every_block(module, channels):
  x = jnp.zeros((2, 8, 8, 3))
  v = module.init(jax.random.key(0), x)
  (_, features), exposed = module.apply(v, x, mutable=["intermediates"])
  assert [b.shape for b in exposed["intermediates"]["layers"]] == [(2, c) for c in channels]


@pytest.mark.slow
def test_information_regulariser_with_five_vmapped_seeds_finishes(tmp_path):
  """The command that deadlocked XLA:CPU (two batched LAPACK kernels holding both workers
  of the intra-op pool: docs/numerics.md); a stall would end it through the watchdog."""
  workdir = tmp_path / "run"
  cmd = ncjax_cmd(workdir, "--config.steps=10", "--config.num_seeds=5",
                  "--config.loss.info_lam=0.1", "--config.loss.info_lam2=0.1",
                  "--config.data.train_per_class=30", "--config.batch_size=100",
                  "--config.optim.warmup_steps=5", "--config.watchdog_floor=240",
                  config="digits.py", tiny=[])
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  assert read_log(workdir)[-1]["step"] == 10
