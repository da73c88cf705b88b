"""The optimiser built from the config: AdamW equals optax.adamw; decoupled vs L2 decay;
schedules."""

import jax.numpy as jnp
import numpy as np
import optax

from ncjax.train.config import base_config
from ncjax.train.state import make_optimizer


def _updates(tx, params, grads, steps=3):
  state = tx.init(params)
  out = []
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    out.append(updates)
  return out


def test_adamw_equals_optax_adamw():
  c = base_config()
  params = {"w": jnp.arange(6.0).reshape(2, 3)}
  grads = {"w": jnp.ones((2, 3)) * 0.3}
  ours = _updates(make_optimizer(c), params, grads)
  theirs = _updates(optax.adamw(c.lr, b1=0.9, b2=0.98, weight_decay=c.weight_decay), params,
                    grads)
  for a, b in zip(ours, theirs):
    np.testing.assert_array_equal(a["w"], b["w"])


def test_sgd_decoupled_decay_stays_out_of_momentum_l2_goes_through_it():
  c = base_config()
  c.optim.name, c.lr, c.weight_decay, c.optim.nesterov = "sgd", 0.1, 0.5, False
  params, zero = {"w": jnp.ones(3)}, {"w": jnp.zeros(3)}
  c.optim.decoupled_weight_decay = True
  decoupled = _updates(make_optimizer(c), params, zero)
  c.optim.decoupled_weight_decay = False
  coupled = _updates(make_optimizer(c), params, zero)
  # Decoupled: -lr * wd * w every step. L2: wd * w accumulates in the momentum buffer.
  for u in decoupled:
    np.testing.assert_allclose(u["w"], -0.1 * 0.5, rtol=1e-6)
  np.testing.assert_allclose([u["w"][0] for u in coupled],
                             [-0.05, -0.05 * 1.9, -0.05 * (1 + 0.9 + 0.81)], rtol=1e-6)


def test_cosine_schedule_with_warmup():
  c = base_config()
  c.optim.name, c.optim.schedule, c.optim.warmup_steps = "sgd", "cosine", 10
  c.steps, c.lr, c.weight_decay, c.optim.momentum = 100, 1.0, 0.0, 0.0
  params, grads = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
  lrs = [-float(u["w"]) for u in _updates(make_optimizer(c), params, grads, steps=100)]
  np.testing.assert_allclose(lrs[:3], [0.0, 0.1, 0.2], atol=1e-6)  # linear warm-up
  assert max(lrs) <= 1.0 + 1e-6 and lrs[-1] < 1e-3  # decays to ~0 at `steps`
