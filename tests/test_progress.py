"""Progress measures: the weight norm, and the Fourier restricted/excluded losses against
a float64 NumPy reference built from explicit 2-D Fourier directions, plus closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax import progress


def _ce(logits, labels, mask=None):
  z = logits - logits.max(1, keepdims=True)
  nll = np.log(np.exp(z).sum(1)) - z[np.arange(len(labels)), labels]
  return nll.mean() if mask is None else nll[mask].mean()


def _reference(logits, train_mask, k):
  """Explicit directions cos/sin(w (a + b)) over the p^2 grid, projected in float64."""
  logits = np.asarray(logits, np.float64)
  p = logits.shape[1]
  a, b = np.divmod(np.arange(p * p), p)
  labels = (a + b) % p
  mean = logits.mean(0)
  centred = logits - mean
  directions, energy = [], []
  for f in range(1, p // 2 + 1):
    pair = []
    for fn in (np.cos, np.sin):
      u = fn(2 * np.pi * f * (a + b) / p)
      norm = np.linalg.norm(u)
      pair.append(u / norm if norm > 1e-9 else np.zeros_like(u))
    directions.append(pair)
    energy.append(sum(np.sum((u @ centred) ** 2) for u in pair))
  key = np.argsort(energy)[::-1][:k]
  component = sum(np.outer(u, u @ centred) for f in key for u in directions[f])
  return {"restricted_loss": _ce(component + mean, labels),
          "excluded_loss": _ce(logits - component, labels, train_mask),
          "key_fraction": sum(energy[f] for f in key) / np.sum(centred**2)}


@pytest.mark.parametrize("p,k", [(7, 2), (4, 2), *(
    pytest.param(p, k, marks=pytest.mark.slow)
    for p, k in ((11, 3), (10, 2), (13, 6), (2, 1), (6, 3), (8, 4), (12, 6), (9, 4)))])
def test_fourier_losses_match_reference(p, k):
  """Even p with k = p / 2 forces the Nyquist frequency, whose sine direction is 0."""
  rng = np.random.default_rng(p)
  logits = rng.normal(size=(p * p, p)).astype(np.float32) * 3
  mask = rng.random(p * p) < 0.4
  got = progress.fourier_losses(jnp.asarray(logits), jnp.asarray(mask), num_frequencies=k)
  want = _reference(logits, mask, k)
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=2e-5, err_msg=name)


def test_fourier_losses_num_frequencies_may_be_traced():
  rng = np.random.default_rng(3)
  p = 9
  logits = jnp.asarray(rng.normal(size=(p * p, p)), jnp.float32)
  mask = jnp.asarray(rng.random(p * p) < 0.5)
  swept = jax.jit(jax.vmap(lambda k: progress.fourier_losses(logits, mask, num_frequencies=k)))(
      jnp.arange(1, 5))
  for i, k in enumerate(range(1, 5)):
    want = _reference(logits, np.asarray(mask), k)
    for name, value in want.items():
      np.testing.assert_allclose(swept[name][i], value, rtol=2e-5, err_msg=f"{name} k={k}")


def test_fourier_network_closed_form():
  """Logits sum_k cos(w_k (a + b - c)) over key frequencies: restricted logits equal the
  logits (restricted loss = full loss, key fraction 1), excluded logits are constant in
  (a, b) so the excluded loss is log p."""
  p, key = 13, (2, 5)
  a, b = np.divmod(np.arange(p * p), p)
  c = np.arange(p)
  logits = 4 * sum(np.cos(2 * np.pi * f * ((a + b)[:, None] - c) / p) for f in key)
  mask = a < b
  got = progress.fourier_losses(jnp.asarray(logits, jnp.float32), jnp.asarray(mask),
                                num_frequencies=2)
  np.testing.assert_allclose(got["restricted_loss"], _ce(logits, (a + b) % p), rtol=1e-5)
  np.testing.assert_allclose(got["excluded_loss"], np.log(p), rtol=1e-5)
  np.testing.assert_allclose(got["key_fraction"], 1.0, rtol=1e-5)


@pytest.mark.slow
def test_fourier_losses_compile_once_and_vmap():
  p = 11
  logits = jax.random.normal(jax.random.key(0), (3, p * p, p))
  mask = jnp.arange(p * p) % 3 == 0

  traces = []

  @jax.jit
  def batched(x):
    traces.append(1)
    return jax.vmap(lambda l: progress.fourier_losses(l, mask, num_frequencies=3))(x)

  out = batched(logits)
  batched(logits + 1.0)
  assert len(traces) == 1
  for i in range(3):
    one = progress.fourier_losses(logits[i], mask, num_frequencies=3)
    np.testing.assert_allclose(out["excluded_loss"][i], one["excluded_loss"], rtol=1e-5)


@pytest.mark.parametrize("shape,k,message", [((10, 3), 1, "p \\* p"), ((49,), 1, "p \\* p"),
                                             ((49, 7), 4, "num_frequencies"),
                                             ((49, 7), 0, "num_frequencies")])
def test_bad_arguments(shape, k, message):
  with pytest.raises(ValueError, match=message):
    progress.fourier_losses(jnp.zeros(shape), jnp.ones(shape[0], bool), num_frequencies=k)


@pytest.mark.parametrize("logits,mask,message", [
    (np.zeros((49, 7), int), np.ones(49, bool), "logits must be real floating"),
    (np.full((49, 7), np.nan, np.float32), np.ones(49, bool), "logits contains NaN"),
    (np.zeros((49, 7), np.float32), np.ones(48, bool), "train_mask must have shape"),
    (np.zeros((49, 7), np.float32), np.ones(49), "train_mask must be boolean")])
def test_bad_inputs_name_the_argument(logits, mask, message):
  with pytest.raises(ValueError, match=message):
    progress.fourier_losses(logits, mask, num_frequencies=2)


@pytest.mark.parametrize("offset,scale", [(1e4, 1.0), (0.0, 1e-30), (0.0, 1e30)])
def test_offset_and_scale(offset, scale):
  """A common offset changes no logit difference; the key frequencies and key fraction
  do not depend on the scale (the losses do, as a softmax does)."""
  p = 11
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(p * p, p)).astype(np.float32)
  mask = rng.random(p * p) < 0.5
  base = progress.fourier_losses(logits, mask, num_frequencies=3)
  moved = progress.fourier_losses(logits * np.float32(scale) + np.float32(offset), mask,
                                  num_frequencies=3)
  np.testing.assert_allclose(moved["key_fraction"], base["key_fraction"], rtol=1e-3)
  if scale == 1.0:
    for name in ("restricted_loss", "excluded_loss"):
      np.testing.assert_allclose(moved[name], base[name], rtol=2e-3)
  want = _reference(logits.astype(np.float64) * scale, mask, 3)
  assert all(np.isfinite(float(v)) for v in moved.values())
  if scale != 1.0:
    np.testing.assert_allclose(moved["restricted_loss"], want["restricted_loss"], rtol=1e-4)


def test_weight_norm_is_the_global_l2_norm():
  params = {"a": jnp.arange(6.0).reshape(2, 3), "b": {"c": -jnp.ones(4)}}
  np.testing.assert_allclose(progress.weight_norm(params), np.sqrt(55 + 4), rtol=1e-6)
