"""The evaluator's keys on a model whose features are its inputs: NC4 of the test split
against the training class means, and the chance levels beside the metrics."""

import jax
import numpy as np
import optax
import pytest

from ncjax import baselines
from ncjax.data.images import Batch
from ncjax.train import meshes
from ncjax.train.config import base_config
from ncjax.train.evaluate import NULL_DRAWS, make_evaluator
from ncjax.train.state import TrainState
from tests import reference as ref

C = 3
TRAIN_X = np.array([-2.0, 0.0, 2.0])  # class centres along x; rows at y = +-1, +-0.5
TEST_X = np.array([0.7, 0.9, 1.1])  # the test split's own centres differ


def _split(centres):
  h = np.array([[x, dy] for x in centres for dy in (-1.0, -0.5, 0.5, 1.0)], np.float32)
  return h, np.repeat(np.arange(C), 4).astype(np.int32)


def _identity_model(variables, inputs, train):
  head = variables["params"]["head"]
  return inputs @ head["kernel"] + head["bias"], inputs  # (logits, features = inputs)


def _nearest_centre_head():
  """W h + b with w_c = mu_c, b_c = -||mu_c||^2 / 2: argmax is the nearest train centre."""
  mu = np.stack([TRAIN_X, np.zeros(C)], 1).astype(np.float32)
  return mu, -0.5 * np.sum(mu**2, 1)


@pytest.fixture(scope="module")
def metrics():
  w, b = _nearest_centre_head()
  state = TrainState.create(apply_fn=_identity_model, tx=optax.identity(), batch_stats={},
                            params={"head": {"kernel": w.T, "bias": b}})
  states = jax.tree.map(lambda x: np.asarray(x)[None], state)  # one member
  batch = lambda h, y: Batch(h, y, np.ones(len(y), bool))
  train, test = batch(*_split(TRAIN_X)), batch(*_split(TEST_X))
  evaluate = make_evaluator(C, meshes.make_mesh(base_config()), data_axis=None)
  return meshes.fetch(evaluate(states, {"train": lambda: [train], "test": lambda: [test]},
                               train))


def _nc4(h, network, centres):
  """Fraction of rows whose network class is not the nearest of ``centres`` (float64)."""
  nearest = np.argmin(((h[:, None] - centres[None]) ** 2).sum(-1), 1)
  return np.mean(network != nearest)


def test_test_nc4_is_against_the_training_class_means(metrics):
  w, b = _nearest_centre_head()
  h, y = _split(TEST_X)
  network = np.argmax(np.float64(h) @ w.T + b, 1)  # (1, 1, 2) per class
  train_means = ref.class_moments(*_split(TRAIN_X), C)["means"]
  test_means = ref.class_moments(h, y, C)["means"]
  assert _nc4(h, network, train_means) == 0.0  # the head is the train nearest-centre rule
  assert _nc4(h, network, test_means) == pytest.approx(1 / 3)  # the old definition
  assert metrics["test_collapse/nc4"][0] == _nc4(h, network, train_means)
  assert metrics["collapse/nc4"][0] == 0.0


def test_permutation_nulls_equal_float64_metrics_of_permuted_labels(metrics):
  for split, prefix in (("train", "collapse"), ("test", "test_collapse")):
    h, y = _split(TRAIN_X if split == "train" else TEST_X)
    rows = [np.asarray(baselines.permuted_labels(k, y))
            for k in jax.random.split(jax.random.key(0), NULL_DRAWS)]
    for name in ("nc1", "vci"):
      values = [getattr(ref, name)(h, yp, C) for yp in rows]
      np.testing.assert_allclose(metrics[f"{prefix}/{name}_null"][0], np.mean(values),
                                 rtol=1e-4, err_msg=f"{prefix}/{name}_null")
      np.testing.assert_allclose(metrics[f"{prefix}/{name}_null_std"][0], np.std(values),
                                 rtol=1e-3, atol=1e-6, err_msg=f"{prefix}/{name}_null_std")


def test_shape_nulls_and_etf_values_are_logged_beside_their_metrics(metrics):
  gaussian = baselines.gaussian_null(num_classes=C, dim=2)
  etf = baselines.simplex_etf(C)
  for prefix in ("collapse", "test_collapse"):
    for key, value in (gaussian | etf).items():
      np.testing.assert_allclose(metrics[f"{prefix}/{key}"][0], value, rtol=1e-6)
  sample = baselines.sample_null(counts=(4, 4, 4), dim=2)
  for key in ("mir", "hdr"):
    np.testing.assert_allclose(metrics[f"sample/{key}_null"][0], sample[f"{key}_null"], rtol=1e-6)
    assert f"sample/{key}_null_std" in metrics
