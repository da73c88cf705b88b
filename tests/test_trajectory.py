"""Multi-seed training as one vmapped state, and metrics recomputed over saved snapshots."""

import json
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ncjax
from ncjax.analysis.analyze import analyze
from ncjax.analysis.trajectory import evaluate, metric_function, trajectory_metrics
from ncjax.data import algorithmic
from ncjax.models import head_weights, make_model
from ncjax.tasks import make_task
from ncjax.train import train
from ncjax.train.config import base_config
from tests.runs import final_params


def tiny_config(**overrides):
  c = base_config()
  c.update(dict(steps=60, metrics_every=20, checkpoint_every=20, snapshots=4,
                sample_size=64) | overrides)
  c.data.modulus = 23
  c.model.kwargs.update(dict(embed_dim=16, hidden_dim=32))
  return c


# Parameters agree to 1 ulp (batched vs unbatched matmuls round differently). These
# metrics amplify that: NC1 through the pseudo-inverse of Sigma_B, HDR as a difference of
# two entropies. Measured worst case over 4 seeds x 4 steps: 2.3e-5 and 1.1e-5.
# A chance level inherits its metric's conditioning (measured: NC1's null std 3.6e-6).
ILL_CONDITIONED = {"collapse/nc1": 1e-4, "collapse/hdr": 1e-4, "sample/hdr": 1e-4,
                   "sample/mir": 1e-5, "test_collapse/nc1": 1e-4, "test_collapse/hdr": 1e-4}


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [None, 64])
def test_vmapped_seeds_equal_separate_runs(tmp_path, batch_size):
  seeds = 2
  together = train(make_task(tiny_config(num_seeds=seeds, batch_size=batch_size)), tmp_path / "all")
  _, stacked = final_params(tmp_path / "all")
  for i in range(seeds):
    alone = train(make_task(tiny_config(seed=i, batch_size=batch_size)), tmp_path / str(i))
    _, params = final_params(tmp_path / str(i))
    jax.tree.map(lambda s, p, i=i: np.testing.assert_allclose(s[i], p[0], rtol=1e-6, atol=1e-6),
                 stacked, params)
    for got, want in zip(together, alone, strict=True):
      assert got["step"] == want["step"]
      for key, value in want.items():
        if key == "step":
          continue
        rtol = ILL_CONDITIONED.get(key.removesuffix("_null").removesuffix("_null_std"), 1e-6)
        if key.endswith("_null_std"):  # a spread over 8 draws: a difference of near equals
          rtol = max(rtol, 1e-4)
        np.testing.assert_allclose(got[key][i], value, rtol=rtol, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_stacked_seeds_resume_exactly(tmp_path):
  train(make_task(tiny_config(num_seeds=2, steps=40)), tmp_path / "resumed")
  train(make_task(tiny_config(num_seeds=2)), tmp_path / "resumed")  # resumes from step 40
  train(make_task(tiny_config(num_seeds=2)), tmp_path / "straight")
  _, resumed = final_params(tmp_path / "resumed")
  _, straight = final_params(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, resumed, straight)


@pytest.mark.slow
def test_analyze_reproduces_logged_metrics(tmp_path):
  logged = {r["step"]: r for r in train(make_task(tiny_config(num_seeds=2)), tmp_path)}
  run = subprocess.run([sys.executable, "-m", "ncjax", "analyze", str(tmp_path),
                        "--chunk_size=4"], capture_output=True, text=True)
  assert run.returncode == 0, run.stderr[-2000:]
  with open(tmp_path / "analysis.jsonl") as f:
    analysed = [json.loads(line) for line in f]
  saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
  assert [r["step"] for r in analysed] == saved and set(saved) <= set(logged)
  for record in analysed:
    want = logged[record["step"]]
    assert record.keys() == want.keys()
    for key in record.keys() - {"step"}:
      np.testing.assert_allclose(record[key], want[key], atol=1e-6, err_msg=key,
                                 rtol=ILL_CONDITIONED.get(key, 1e-5))
  with open(tmp_path / "analysis.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_analyze_named_metrics_on_test_split(tmp_path):
  config = tiny_config(steps=20, snapshots=2)
  train(make_task(config), tmp_path)
  records = analyze(tmp_path, ["nc1", "vci", "mir", "nc2"], split="test")
  assert not os.path.exists(tmp_path / "analysis.train.jsonl")
  _, params = final_params(tmp_path)
  model = make_model("mlp", 23, vocab_size=24, embed_dim=16, hidden_dim=32)
  _, test = algorithmic("add", 23, 0.5, seed=0)
  params = jax.tree.map(lambda x: x[0], params)
  _, features = model.apply({"params": params}, test.inputs)
  w, _ = head_weights(params)
  stats = ncjax.class_stats(features, test.labels, num_classes=23)
  last = records[-1]
  np.testing.assert_allclose(last["test/nc1"], ncjax.nc1(stats), rtol=1e-4)
  np.testing.assert_allclose(last["test/vci"], ncjax.vci(stats), rtol=1e-5)
  np.testing.assert_allclose(last["test/mir"], ncjax.mir(w, stats.centred_means,
                                                         mask=stats.present), rtol=1e-5)
  np.testing.assert_allclose(last["test/nc2/equinorm_means"],
                             ncjax.nc2(stats)["equinorm_means"], rtol=1e-5)
  for bad, message in [("eigh", "unknown metric"), ("gram_entropy", "unknown metric")]:
    with pytest.raises(ValueError, match=message):
      analyze(tmp_path, [bad])


@pytest.mark.slow
def test_analyze_writes_each_split_beside_the_other(tmp_path):
  train(make_task(tiny_config(steps=4, snapshots=1)), tmp_path)
  analyze(tmp_path, ["nc1"], split="train")
  before = pathlib.Path(tmp_path / "analysis.train.jsonl").read_text()
  test = analyze(tmp_path, ["nc1"], split="test")
  assert pathlib.Path(tmp_path / "analysis.train.jsonl").read_text() == before
  assert "train/nc1" in before and set(test[0]) == {"step", "test/nc1"}
  assert os.path.exists(tmp_path / "analysis.test.png")


def linear_problem(snapshots=10, n=60, d_in=12, d=8, classes=4):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, d_in)).astype(np.float32)
  labels = np.arange(n) % classes
  params = [{"w": rng.normal(size=(d_in, d)).astype(np.float32),
             "head": rng.normal(size=(classes, d)).astype(np.float32)}
            for _ in range(snapshots)]
  features_fn = lambda p: (jnp.tanh(x @ p["w"]), p["head"], None)
  return params, features_fn, labels, classes


@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [1, 4, 16])
def test_trajectory_metrics_match_per_snapshot_calls(chunk_size):
  params, features_fn, labels, classes = linear_problem()
  names = ("nc1", "cdnv", "vci", "hdr", "matrix_entropy", "collapse_metrics")
  curves = trajectory_metrics(params, features_fn, labels, classes, names, chunk_size)
  for t, p in enumerate(params):
    features, head, _ = features_fn(p)
    stats = ncjax.class_stats(features, labels, num_classes=classes)
    want = {"nc1": ncjax.nc1(stats), "cdnv": ncjax.cdnv(stats), "vci": ncjax.vci(stats),
            "hdr": ncjax.hdr(head, stats.centred_means),
            "matrix_entropy": ncjax.matrix_entropy(features),
            **{f"collapse_metrics/{k}": v for k, v in
               ncjax.collapse_metrics(features, labels, num_classes=classes, head=head).items()}}
    assert curves.keys() == want.keys()
    for key, value in want.items():
      assert curves[key].shape == (len(params),)
      np.testing.assert_allclose(curves[key][t], value, rtol=2e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_evaluate_compiles_once_for_all_snapshots():
  params, features_fn, labels, classes = linear_problem(snapshots=10)
  metric = metric_function(("vci", "mir"), features_fn, jnp.asarray(labels), classes)
  traced = chex.assert_max_traces(metric, n=1)
  out = evaluate(traced, params, chunk_size=4)  # chunks of 4, 4, 2 (+2 padding)
  assert out["vci"].shape == (10,)
  np.testing.assert_allclose(out["vci"], evaluate(metric, params, chunk_size=10)["vci"],
                             rtol=1e-6)
