"""Flax NNX models train natively: named in a config (class or factory) or passed as
``task.model``; checkpoints, resume and ``ncjax analyze`` work as for linen."""

import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from ncjax.models import make_model
from ncjax.models.nnx_adapter import NNXModel
from ncjax.tasks import make_task
from ncjax.train import train
from ncjax.train.config import base_config
from tests.nnx_models import NNXMLP
from tests.runs import final_params, ncjax_cmd, read_log


def nnx_config(name="tests.nnx_models:NNXMLP", **overrides):
  c = base_config()
  c.update(dict(steps=20, metrics_every=10, checkpoint_every=10, snapshots=2,
                sample_size=64) | overrides)
  c.data.modulus = 23
  c.model.name = name
  c.model.kwargs = {"hidden_dim": 32}
  return c


def test_make_model_adapts_an_nnx_class_to_logits_and_features():
  model = make_model("tests.nnx_models:NNXMLP", 5, vocab_size=6, hidden_dim=8)
  inputs = np.zeros((3, 3), np.int32)
  variables = model.init(jax.random.key(0), inputs)
  logits, features = model.apply(variables, inputs)
  assert isinstance(model, NNXModel)
  assert logits.shape == (3, 5) and features.shape == (3, 8)
  assert variables["params"]["head"]["kernel"].shape == (8, 5)


def test_batchnorm_statistics_update_in_train_mode_only():
  model = make_model("tests.nnx_models:bn_factory", 5, vocab_size=6)
  inputs = np.arange(12).reshape(4, 3) % 6
  variables = model.init(jax.random.key(0), inputs)
  _, updates = model.apply(variables, inputs, train=True, mutable=["batch_stats"])
  before = variables["batch_stats"]["norm"]["mean"]
  assert not np.allclose(updates["batch_stats"]["norm"]["mean"], before)


def test_an_unimportable_model_path_is_named():
  with pytest.raises(ValueError, match="tests.nnx_models:Nope"):
    make_model("tests.nnx_models:Nope", 5)


@pytest.mark.slow
def test_nnx_run_resumes_exactly(tmp_path):
  name = "tests.nnx_models:bn_factory"
  train(make_task(nnx_config(name, steps=10)), tmp_path / "resumed")
  train(make_task(nnx_config(name)), tmp_path / "resumed")
  train(make_task(nnx_config(name)), tmp_path / "straight")
  _, resumed = final_params(tmp_path / "resumed")
  _, straight = final_params(tmp_path / "straight")
  jax.tree.map(np.testing.assert_array_equal, resumed, straight)


@pytest.mark.slow
def test_an_nnx_instance_as_task_model_trains(tmp_path):
  task = make_task(nnx_config(name="mlp"))
  task.model = NNXMLP(23, rngs=nnx.Rngs(0), vocab_size=24)
  records = train(task, tmp_path)
  _, params = final_params(tmp_path)
  assert records[-1]["step"] == 20 and set(params) == {"embed", "hidden", "head"}


@pytest.mark.slow
def test_cli_trains_and_analyzes_an_nnx_model_named_in_the_config(tmp_path):
  args = ["--config.model.name=tests.nnx_models:NNXMLP", "--config.steps=20",
          "--config.metrics_every=10", "--config.checkpoint_every=10", "--config.snapshots=2"]
  subprocess.run(ncjax_cmd(tmp_path, *args), check=True, capture_output=True, timeout=300)
  result = subprocess.run([sys.executable, "-m", "ncjax", "analyze", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  analysed = [json.loads(line) for line in pathlib.Path(tmp_path / "analysis.jsonl").read_text().splitlines()]
  logged = {r["step"]: r for r in read_log(tmp_path)}
  np.testing.assert_allclose(analysed[-1]["test/accuracy"],
                             logged[analysed[-1]["step"]]["test/accuracy"])
