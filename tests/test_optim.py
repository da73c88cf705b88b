"""Grokfast filters against a NumPy float64 reference of the filter, their validation,
vmapping over seeds, one compile, and exact resume of a run with the filter on."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ncjax import optim
from ncjax.train.config import base_config
from ncjax.train.state import make_optimizer
from tests.runs import final_params, ncjax_cmd


def _grads(steps=10, shape=(3, 2), seed=0):
  return np.random.default_rng(seed).normal(size=(steps, *shape))


def _run(tx, grads):
  params = {"w": jnp.zeros(grads.shape[1:], jnp.float32)}
  state, out = tx.init(params), []
  for g in grads:
    updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
    out.append(np.asarray(updates["w"]))
  return np.stack(out)


def _ema_reference(grads, alpha, lamb):
  m, out = None, []
  for g in grads:
    m = g.copy() if m is None else alpha * m + (1 - alpha) * g
    out.append(g + lamb * m)
  return np.stack(out)


def _ma_reference(grads, window, lamb, warmup):
  history, out = [], []
  for g in grads:
    history = (history + [g])[-window:]
    full = len(history) == window
    out.append(g + lamb * np.mean(history, 0) if full or not warmup else g)
  return np.stack(out)


@pytest.mark.parametrize("alpha,lamb", [(0.98, 2.0), (0.5, 0.3), (0.0, 1.0)])
def test_ema_matches_reference_over_ten_steps(alpha, lamb):
  grads = _grads()
  np.testing.assert_allclose(_run(optim.grokfast_ema(alpha, lamb), grads),
                             _ema_reference(grads, alpha, lamb), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("window,lamb,warmup", [(4, 5.0, True), (4, 5.0, False), (1, 2.0, True),
                                                (12, 1.0, True)])
def test_ma_matches_reference_over_ten_steps(window, lamb, warmup):
  grads = _grads()
  np.testing.assert_allclose(_run(optim.grokfast_ma(window, lamb, warmup=warmup), grads),
                             _ma_reference(grads, window, lamb, warmup), rtol=1e-5, atol=1e-6)


def test_lamb_zero_is_the_identity():
  grads = _grads()
  np.testing.assert_allclose(_run(optim.grokfast_ema(0.9, 0.0), grads), grads, rtol=1e-6)
  np.testing.assert_allclose(_run(optim.grokfast_ma(3, 0.0), grads), grads, rtol=1e-6)


def test_constant_gradient_gain_is_one_plus_lamb():
  grads = np.ones((10, 2))
  np.testing.assert_allclose(_run(optim.grokfast_ema(0.9, 2.0), grads), 3.0, rtol=1e-6)
  np.testing.assert_allclose(_run(optim.grokfast_ma(3, 2.0), grads)[2:], 3.0, rtol=1e-6)


@pytest.mark.parametrize("make,kwargs,message", [
    (optim.grokfast_ema, dict(alpha=1.0), "alpha"), (optim.grokfast_ema, dict(lamb=-1), "lamb"),
    (optim.grokfast_ma, dict(window=0), "window"), (optim.grokfast_ma, dict(window=2.5), "window"),
    (optim.grokfast_ma, dict(lamb=float("nan")), "lamb")])
def test_bad_arguments_raise(make, kwargs, message):
  with pytest.raises(ValueError, match=message):
    make(**kwargs)


@pytest.mark.parametrize("kind", ["ema", "ma"])
def test_vmapped_over_seeds_equals_each_seed_and_compiles_once(kind):
  tx = optim.grokfast_ema(0.8, 2.0) if kind == "ema" else optim.grokfast_ma(3, 2.0)
  grads = np.stack([_grads(seed=s) for s in range(4)], 1)  # (T, S, 3, 2)
  params = {"w": jnp.zeros((4, 3, 2))}
  state = jax.vmap(tx.init)(params)
  chex.clear_trace_counter()  # the counter is per function name, across parameters

  @jax.jit
  @chex.assert_max_traces(n=1)
  def update(g, state):
    return jax.vmap(lambda g, s, p: tx.update(g, s, p))({"w": g}, state, params)

  out = []
  for g in grads:
    updates, state = update(jnp.asarray(g, jnp.float32), state)
    out.append(np.asarray(updates["w"]))
  for s in range(4):
    np.testing.assert_allclose(np.stack(out)[:, s], _run(tx, grads[:, s]), rtol=1e-6, atol=1e-6)


def test_config_chains_the_filter_before_adamw():
  c = base_config()
  c.optim.grokfast, c.optim.grokfast_alpha, c.optim.grokfast_lamb = "ema", 0.9, 2.0
  grads = _grads()
  want = _run(optax.chain(optim.grokfast_ema(0.9, 2.0),
                          optax.adamw(c.lr, b1=0.9, b2=0.98, weight_decay=c.weight_decay)), grads)
  np.testing.assert_allclose(_run(make_optimizer(c), grads), want, rtol=1e-6)
  assert not np.allclose(want, _run(make_optimizer(base_config()), grads))


@pytest.mark.slow
def test_resume_with_grokfast_is_exact(tmp_path, kind="ma"):
  """40 steps in one go equal 20 steps then an extension to 40: the filter state is in
  the checkpoint. The moving average (window 7: its ring buffer wraps and its warm-up
  ends before the split) is the filter with the most state; the EMA's is one array."""
  import subprocess

  grokfast = [f"--config.optim.grokfast={kind}", "--config.optim.grokfast_window=7",
              "--config.metrics_every=20", "--config.snapshots=2"]
  whole, split = tmp_path / "whole", tmp_path / "split"
  subprocess.run(ncjax_cmd(whole, *grokfast, "--config.steps=40"), check=True,
                 capture_output=True, timeout=300)
  subprocess.run(ncjax_cmd(split, *grokfast, "--config.steps=20"), check=True,
                 capture_output=True, timeout=300)
  subprocess.run(ncjax_cmd(split, *grokfast, "--config.steps=40", "--allow_change=steps"),
                 check=True, capture_output=True, timeout=300)
  (step, got), (want_step, want) = final_params(split), final_params(whole)
  assert step == want_step == 40
  jax.tree.map(np.testing.assert_array_equal, got, want)
