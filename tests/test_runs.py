"""load_run: a run's config, metrics and parameters for notebooks, chunk by chunk."""

import subprocess

import jax
import numpy as np
import pytest

from ncjax.analysis import load_run
from tests.runs import final_params, ncjax_cmd, read_log


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  subprocess.run(ncjax_cmd(workdir, "--config.num_seeds=2", "--config.steps=40",
                           "--config.snapshots=4"), check=True, capture_output=True, timeout=600)
  return workdir


@pytest.mark.slow
def test_metrics_and_config(two_seed_run):
  run = load_run(str(two_seed_run))
  assert run.config.num_seeds == 2 and run.config.data.modulus == 23
  steps, acc = run.metric("test/accuracy")
  log = read_log(two_seed_run)
  assert steps.tolist() == [r["step"] for r in log] and acc.shape == (len(log), 2)
  np.testing.assert_array_equal(acc[-1], log[-1]["test/accuracy"])
  _, norm = run.metric("weights/norm")
  assert (norm > 0).all()
  with pytest.raises(KeyError, match="logged: .*collapse/mir"):
    run.metric("no/such")


@pytest.mark.slow
def test_params_chunk_by_chunk(two_seed_run):
  run = load_run(str(two_seed_run))
  chunks = list(run.params(chunk_size=3))
  steps = [s for chunk_steps, _ in chunks for s in chunk_steps]
  assert steps == run.checkpoint_steps and steps[-1] == 40
  assert all(len(s) <= 3 for s, _ in chunks)
  last_steps, last = chunks[-1]
  kernel = last["head"]["kernel"]
  assert kernel.shape[:2] == (len(last_steps), 2)
  _, want = final_params(two_seed_run)
  jax.tree.map(lambda got, w: np.testing.assert_array_equal(got[-1], w), last, want)
  with pytest.raises(ValueError, match="chunk_size"):
    next(run.params(chunk_size=0))


def test_not_a_run_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="not an ncjax run directory"):
    load_run(str(tmp_path))
