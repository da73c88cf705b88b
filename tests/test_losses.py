"""Losses against float64 NumPy references, closed forms and finite differences."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax import losses
from tests import reference as ref


def reference_cross_entropy(logits, labels, smoothing, mask, temperature=1.0):
  logits = np.asarray(logits, np.float64) / temperature
  c = logits.shape[1]
  logp = logits - logits.max(1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(1, keepdims=True))
  target = (1 - smoothing) * np.eye(c)[labels] + smoothing / c
  per_row = -(target * logp).sum(1)
  return per_row[mask].mean()


@pytest.mark.parametrize("smoothing,temperature", [(0.0, 1.0), (0.1, 1.0), (0.1, 3.0)])
def test_cross_entropy_matches_reference_with_mask(smoothing, temperature):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(12, 5)).astype(np.float32) * 3
  labels = rng.integers(0, 5, 12)
  mask = rng.random(12) < 0.7
  got = losses.cross_entropy(logits, labels, label_smoothing=smoothing, mask=mask,
                             temperature=temperature)
  np.testing.assert_allclose(
      got, reference_cross_entropy(logits, labels, smoothing, mask, temperature), rtol=1e-5)
  full = losses.cross_entropy(logits, labels, label_smoothing=smoothing,
                              temperature=temperature)
  np.testing.assert_allclose(full, reference_cross_entropy(
      logits, labels, smoothing, np.ones(12, bool), temperature), rtol=1e-5)


@pytest.mark.parametrize("kwargs,match", [(dict(label_smoothing=1.0), "label_smoothing"),
                                          (dict(temperature=0.0), "temperature")])
def test_cross_entropy_rejects_bad_options(kwargs, match):
  with pytest.raises(ValueError, match=match):
    losses.cross_entropy(np.zeros((2, 3), np.float32), np.zeros(2, int), **kwargs)


@pytest.fixture
def batch():
  """Features (30, 6) with a masked tail, dead (all-zero) rows, an absent class (3 of 5
  classes present plus one one-sample class), and head rows (5, 6)."""
  rng = np.random.default_rng(1)
  f = rng.normal(size=(30, 6)).astype(np.float32) + 0.5
  f[[4, 9]] = 0.0  # dead ReLU features
  labels = np.r_[np.zeros(10), np.ones(12), np.full(7, 2), [4]].astype(np.int32)
  mask = np.arange(30) < 27
  mask[29] = True  # class 4: one sample
  head = rng.normal(size=(5, 6)).astype(np.float32)
  return f, labels, mask, head


def _kept(f, mask):
  return mask & np.any(f != 0, axis=1)


class TestInfoRegularizer(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_reference_with_mask_and_dead_rows(self):
    f, labels, mask, head = self.batch
    fn = self.variant(lambda *a: losses.info_regularizer(*a, lam=0.7, lam2=0.3, mask=mask))
    keep = _kept(f, mask)
    np.testing.assert_allclose(fn(f, labels, head),
                               ref.info_regularizer(f[keep], head, labels[keep], 0.7, 0.3),
                               rtol=2e-4, atol=2e-5)

  @pytest.fixture(autouse=True)
  def _batch(self, batch):
    self.batch = batch

  def test_orthonormal_head_rows_closed_form(self):
    # One sample per class, f_i = 3 w_{y_i}, orthonormal head rows: G(f) = G(w_y) = I, so
    # H = I(G(f); G(w_y)) = log n and the entropy gap is 0: the loss is -lam log n.
    head = np.eye(5, 6, dtype=np.float32)
    labels = np.array([3, 0, 4, 1, 2], np.int32)
    got = losses.info_regularizer(3 * head[labels], labels, head, lam=0.7, lam2=5.0)
    np.testing.assert_allclose(got, -0.7 * np.log(5), rtol=1e-5)

  @pytest.mark.slow
  def test_grad_matches_finite_differences(self):
    f, labels, mask, head = self.batch
    mask = _kept(f, mask)  # the dead rows are a kink: finite differences would revive them
    with jax.enable_x64(True):
      fn = jax.jit(lambda a, w: losses.info_regularizer(a, labels, w, lam=0.5, lam2=0.2,
                                                          mask=mask))
      jax.test_util.check_grads(fn, (jnp.float64(f), jnp.float64(head)), order=1,
                                modes=("rev",), atol=1e-5, rtol=1e-5)


class TestCMALoss(chex.TestCase):

  @pytest.fixture(autouse=True)
  def _batch(self, batch):
    self.batch = batch

  @chex.variants(with_jit=True, without_jit=True)
  def test_matches_reference_absent_and_one_sample_classes(self):
    f, labels, mask, head = self.batch
    fn = self.variant(lambda a, y, t: losses.cma_loss(a, y, t, num_classes=5, mask=mask))
    keep = _kept(f, mask)
    got = fn(f, labels, head)
    np.testing.assert_allclose(got, ref.cma_loss(f[keep], labels[keep], head), rtol=1e-4)

  def test_aligned_groups_score_zero_and_orthogonal_groups_one(self):
    # Features equal to (positive multiples of) their class embedding: each group is
    # rank one, entropy 0. One feature orthogonal to its embedding: a group of two
    # orthonormal rows, normalised entropy log 2 / log 2 = 1.
    cma = jax.jit(losses.cma_loss, static_argnames="num_classes")
    t = np.eye(4, dtype=np.float32)
    labels = np.array([0, 0, 1, 2, 2, 2], np.int32)
    aligned = t[labels] * np.array([1, 2, 3, 1, 5, 0.5], np.float32)[:, None]
    np.testing.assert_allclose(cma(aligned, labels, t, num_classes=4), 0.0,
                               atol=1e-6)
    orthogonal = t[[1]]
    np.testing.assert_allclose(cma(orthogonal, np.array([0]), t, num_classes=4),
                               1.0, rtol=1e-5)

  @pytest.mark.slow
  def test_grad_matches_finite_differences_and_is_zero_on_padding(self):
    f, labels, mask, head = self.batch
    mask = _kept(f, mask)  # the dead rows are a kink: finite differences would revive them
    with jax.enable_x64(True):
      fn = jax.jit(lambda a, t: losses.cma_loss(a, labels, t, num_classes=5, mask=mask))
      args = (jnp.float64(f), jnp.float64(head))
      jax.test_util.check_grads(fn, args, order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
      grad_f, grad_t = jax.grad(fn, argnums=(0, 1))(*args)
    assert np.all(np.isfinite(grad_f)) and np.all(grad_f[~_kept(f, mask)] == 0)
    assert np.all(grad_t[3] == 0)  # class 3 is absent: its embedding gets no gradient

  def test_compiles_once_across_batches(self):
    f, labels, mask, head = self.batch

    @jax.jit
    @chex.assert_max_traces(n=1)
    def fn(a, y, m):
      return losses.cma_loss(a, y, head, num_classes=5, mask=m)

    for shift in range(3):  # different classes present each time
      fn(f, (labels + shift) % 5, np.roll(mask, shift))

@pytest.mark.parametrize("args,kwargs,match", [
    ((np.ones((4, 3)), np.zeros(4, np.int32), np.ones((5, 2))), {}, "class_embeddings"),
    ((np.ones((4, 3)), np.zeros(4, np.int32), np.ones((4, 3))), {}, "num_classes"),
    ((np.ones((4, 3)), np.full(4, 7, np.int32), np.ones((5, 3))), {}, "labels"),
    ((np.ones((4, 3)), np.zeros(4), np.ones((5, 3))), {}, "labels must be integers"),
    ((np.ones((4, 3)), np.zeros(4, np.int32), np.ones((5, 3))),
     dict(mask=np.ones(4)), "mask must be boolean"),
    ((np.full((4, 3), np.nan), np.zeros(4, np.int32), np.ones((5, 3))), {}, "NaN"),
])
def test_bad_input_raises_naming_the_argument(args, kwargs, match):
  with pytest.raises(ValueError, match=match):
    losses.cma_loss(*args, num_classes=5, **kwargs)


def test_supervised_loss_combines_the_terms():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(16, 6)).astype(np.float32)
  head = rng.normal(size=(4, 6)).astype(np.float32)
  labels = rng.integers(0, 4, 16).astype(np.int32)
  logits = f @ head.T
  ce = losses.cross_entropy(logits, labels, label_smoothing=0.1)
  cma = jax.jit(losses.cma_loss, static_argnames="num_classes")(f, labels, head, num_classes=4)
  reg = jax.jit(losses.info_regularizer, static_argnames=("lam", "lam2"))(
      f, labels, head, lam=0.2, lam2=0.1)
  got = jax.jit(lambda *a: losses.supervised_loss(*a, label_smoothing=0.1, cma_lam=0.3,
                                                  info_lam=0.2, info_lam2=0.1))(
      logits, labels, f, head)
  np.testing.assert_allclose(got, 0.7 * ce + 0.3 * cma + reg, rtol=1e-5)
  np.testing.assert_allclose(losses.supervised_loss(logits, labels, f, head),
                             losses.cross_entropy(logits, labels), rtol=1e-6)
