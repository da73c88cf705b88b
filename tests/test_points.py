"""Parameter points: interpolation, global magnitude pruning (against NumPy), BatchNorm
statistics recomputed at a point (against the batch means and variances computed by
hand), a masked fine-tune that keeps pruned weights at 0."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ncjax.analysis import points
from ncjax.models.vision import BN_MOMENTUM
from ncjax.train.config import base_config
from ncjax.train.meshes import make_mesh


def _tree(seed):
  rng = np.random.default_rng(seed)
  return {"conv": {"kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32),
                   "bias": rng.normal(size=4).astype(np.float32)},
          "head": {"kernel": rng.normal(size=(4, 5)).astype(np.float32)}}


def test_interpolation_is_the_straight_line():
  a, b = _tree(0), _tree(1)
  line = points.interpolate(a, b, [0.0, 0.25, 1.0])
  for x, y, got in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(line), strict=True):
    assert got.shape == (3, *x.shape) and got.dtype == x.dtype
    np.testing.assert_array_equal(got[0], x)
    np.testing.assert_allclose(got[1], 0.75 * x + 0.25 * y, rtol=1e-6)
    np.testing.assert_allclose(got[2], y, rtol=1e-6)


def test_global_magnitude_pruning_against_numpy():
  params = _tree(2)
  sparsities = [0.0, 0.3, 0.9]
  pruned, masks = points.magnitude_prune(params, sparsities)
  weights = np.concatenate([params["conv"]["kernel"].ravel(), params["head"]["kernel"].ravel()])
  for k, s in enumerate(sparsities):
    # NumPy reference: zero the floor(s N) entries of smallest |w| over both kernels.
    keep = np.ones(weights.size, bool)
    keep[np.argsort(np.abs(weights), kind="stable")[:int(np.floor(s * weights.size))]] = False
    got = np.concatenate([pruned["conv"]["kernel"][k].ravel(), pruned["head"]["kernel"][k].ravel()])
    np.testing.assert_array_equal(got, np.where(keep, weights, 0))
    np.testing.assert_array_equal(pruned["conv"]["bias"][k], params["conv"]["bias"])
    np.testing.assert_array_equal(masks["conv"]["bias"][k], 1)
  # Pooled globally: the layers lose different fractions.
  fractions = [np.mean(masks[n]["kernel"][2] == 0) for n in ("conv", "head")]
  assert fractions[0] != fractions[1]


@pytest.mark.parametrize("bad", [[1.0], [-0.1], [], [[0.5]], [np.nan]])
def test_bad_sparsities_are_refused(bad):
  with pytest.raises(ValueError, match="sparsities"):
    points.magnitude_prune(_tree(0), bad)


class _DenseBN(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    h = nn.Dense(3, name="dense")(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, name="bn")(h)
    return nn.Dense(2, name="head")(h), h


def test_batch_statistics_are_recomputed_at_each_point():
  model = _DenseBN()
  x = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 4)).astype(np.float32)
  inits = [model.init(jax.random.key(i), x[:1]) for i in range(2)]
  params = jax.tree.map(lambda *p: jnp.stack(p), *[v["params"] for v in inits])
  stale = jax.tree.map(lambda *p: jnp.stack(p), *[v["batch_stats"] for v in inits])
  states = points.states_at(params, stale, model, optax.sgd(0.1))
  fresh = points.recompute_batch_stats(states, x, batch_size=16)
  for i in range(2):
    kernel, bias = (np.asarray(params["dense"][k][i], np.float64) for k in ("kernel", "bias"))
    h = (x.astype(np.float64) @ kernel + bias).reshape(4, 16, 3)  # 4 batches of 16
    np.testing.assert_allclose(fresh.batch_stats["bn"]["mean"][i], h.mean(1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(fresh.batch_stats["bn"]["var"][i], h.var(1).mean(0), rtol=1e-4)


def test_a_masked_finetune_keeps_pruned_weights_at_zero():
  model = _DenseBN()
  x = np.random.default_rng(1).normal(size=(32, 4)).astype(np.float32)
  y = np.arange(32) % 2
  v = model.init(jax.random.key(0), x[:1])
  params, masks = points.magnitude_prune(v["params"], [0.5, 0.8])
  stats = jax.tree.map(lambda s: jnp.stack([s, s]), v["batch_stats"])
  states = points.states_at(params, stats, model, optax.sgd(0.5))
  from ncjax.data import Batch

  batch = Batch(jnp.asarray(np.stack([x, x])), jnp.asarray(np.stack([y, y])),
                jnp.ones((2, 32), bool))
  stream = iter(lambda: batch, None)
  loss = lambda logits, features, head, b: optax.softmax_cross_entropy_with_integer_labels(
      logits, b.labels).mean()
  tuned = points.finetune(states, masks, stream, loss, steps=3,
                          mesh=make_mesh(base_config()))
  for before, after, mask in zip(jax.tree.leaves(params), jax.tree.leaves(tuned.params),
                                 jax.tree.leaves(masks), strict=True):
    after = np.asarray(after)
    assert np.all(after[mask == 0] == 0)
    assert not np.allclose(after[mask == 1], np.asarray(before)[mask == 1])


def test_bad_points_are_refused_naming_the_argument():
  with pytest.raises(ValueError, match="same structure and shapes"):
    points.interpolate(_tree(0), {**_tree(1), "head": {"kernel": np.ones((5, 5), np.float32)}}, [0.5])
  with pytest.raises(ValueError, match="alphas"):
    points.interpolate(_tree(0), _tree(1), [np.nan])
  bad = _tree(0)
  bad["head"]["kernel"][0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    points.magnitude_prune(bad, [0.5])
