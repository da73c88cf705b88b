"""The optimiser built from the config (AdamW equals optax.adamw; decoupled vs L2 decay;
schedules; a frozen backbone) and the start from another run's backbone."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

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
  for a, b in zip(ours, theirs, strict=True):
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


@pytest.mark.parametrize("warmup", [0, 5])
def test_step_schedule_divides_by_ten_at_a_third_and_two_thirds(warmup):
  c = base_config()
  c.optim.name, c.optim.schedule, c.optim.warmup_steps = "sgd", "step", warmup
  c.steps, c.lr, c.weight_decay, c.optim.momentum = 90, 1.0, 0.0, 0.0
  params, grads = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
  lrs = np.asarray([-float(u["w"]) for u in _updates(make_optimizer(c), params, grads, steps=90)])
  expected = np.where(np.arange(90) < 30, 1.0, np.where(np.arange(90) < 60, 0.1, 0.01))
  expected[:warmup] = np.arange(warmup) / warmup
  np.testing.assert_allclose(lrs, expected, rtol=1e-5, atol=1e-7)


def _tiny_classification(**overrides):
  c = base_config()
  c.task = "classification"
  c.data.name = "synthetic"
  c.model.name = "cnn"
  c.model.kwargs = {"channels": (4,), "features": 8}
  c.optim.name = "sgd"
  c.update(dict(batch_size=16, lr=0.1, steps=5, num_seeds=2) | overrides)
  return c


@pytest.mark.slow
def test_transplant_takes_the_backbone_keeps_a_new_head_and_checks_shapes():
  from ncjax.models import make_model
  from ncjax.train.meshes import make_mesh
  from ncjax.train.state import create_states, transplant

  x = jnp.zeros((1, 8, 8, 3))
  cnn = lambda classes, features=8: make_model("cnn", classes, channels=(4,), features=features)
  mesh = make_mesh(_tiny_classification())
  source = create_states(_tiny_classification(num_seeds=1, seed=7), cnn(4), x, mesh)
  fresh = create_states(_tiny_classification(), cnn(3), x, mesh)
  got = transplant(fresh, {"params": source.params, "batch_stats": source.batch_stats}, mesh)
  for seed in range(2):  # one source seed starts every seed
    np.testing.assert_array_equal(got.params["Dense_0"]["kernel"][seed],
                                  source.params["Dense_0"]["kernel"][0])
  np.testing.assert_array_equal(got.params["head"]["kernel"], fresh.params["head"]["kernel"])
  wider = create_states(_tiny_classification(), cnn(3, features=9), x, mesh)
  with pytest.raises(ValueError, match="init_from"):
    transplant(wider, {"params": source.params, "batch_stats": source.batch_stats}, mesh)


def test_frozen_backbone_moves_only_the_head_and_keeps_batchnorm_statistics():
  import jax

  from ncjax.tasks import make_task
  from ncjax.train.state import create_states, make_loss, make_train_step

  config = _tiny_classification(freeze="backbone", weight_decay=1e-2)
  task = make_task(config)
  state = create_states(config, task.model, task.example_inputs, task.mesh)
  before = jax.device_get(state)  # host copies: the step donates its input
  step = make_train_step(make_loss(config), task.mesh, train_mode=False)
  stream = task.train_stream(0)
  for _ in range(3):
    state, _ = step(state, next(stream))
  for name in before.params:
    same = jax.tree.map(np.array_equal, before.params[name], jax.device_get(state.params[name]))
    assert all(jax.tree.leaves(same)) == (name != "head"), name
  same = jax.tree.map(np.array_equal, before.batch_stats, jax.device_get(state.batch_stats))
  assert all(jax.tree.leaves(same))


def _trained(config, steps=3):
  """Host params of every member after ``steps`` train steps of ``config``."""
  import jax

  from ncjax.tasks import make_task
  from ncjax.train.config import swept_loss_options
  from ncjax.train.state import create_states, make_loss, make_train_step

  task = make_task(config)
  state = create_states(config, task.model, task.example_inputs, task.mesh)
  step = make_train_step(make_loss(config), task.mesh, loss_options=swept_loss_options(config))
  stream = task.train_stream(0)
  for _ in range(steps):
    state, _ = step(state, next(stream))
  return jax.device_get(state.params)


@pytest.mark.slow
@pytest.mark.parametrize("key,values", [
    ("loss.temperature", (0.5, 3.0)), ("loss.label_smoothing", (0.0, 0.3))])
def test_each_member_of_a_vmapped_sweep_trains_exactly_as_its_own_run(key, values):
  import jax

  from experiments.common import overridden
  from ncjax.train.config import member_seeds

  swept = _tiny_classification(num_seeds=2, sweep_key=key, sweep_values=values)
  assert member_seeds(swept) == [0, 1, 0, 1]
  got = _trained(swept)
  for v, value in enumerate(values):
    alone = _trained(overridden(_tiny_classification(num_seeds=2), {key: value}))
    for seed in range(2):
      pick = lambda tree, i: jax.tree.map(lambda x: x[i], tree)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                   pick(got, 2 * v + seed), pick(alone, seed))
  # The two values train differently (the sweep is not a no-op).
  assert not np.allclose(jax.tree.leaves(got)[0][0], jax.tree.leaves(got)[0][2])


@pytest.mark.slow
def test_init_seed_starts_every_member_from_one_initialisation():
  import jax

  from ncjax.tasks import make_task
  from ncjax.train.state import create_states

  for init_seed, same in ((3, True), (None, False)):
    config = _tiny_classification(init_seed=init_seed)
    task = make_task(config)
    params = create_states(config, task.model, task.example_inputs, task.mesh).params
    equal = [np.array_equal(x[0], x[1]) for x in jax.tree.leaves(params)]
    assert all(equal) is same


@pytest.mark.parametrize("overrides,match", [
    ({"sweep_key": "lr", "sweep_values": (0.1,)}, "sweep_key"),
    ({"sweep_key": "loss.temperature"}, "sweep_values"),
    ({"sweep_values": (1.0,)}, "sweep_values"),
    ({"sweep_key": "loss.temperature", "sweep_values": (1.0, 1.0)}, "distinct"),
    ({"sweep_key": "loss.label_smoothing", "sweep_values": (0.1, 1.5)},
     r"sweep_values: 1.5: config.loss.label_smoothing"),
    ({"init_seed": -1}, "init_seed"),
    ({"layer_metrics": True, "model.name": "image_mlp"}, "layer_metrics"),
])
def test_bad_sweeps_are_refused_naming_the_key(overrides, match):
  from experiments.common import overridden
  from ncjax.train.config import validate

  with pytest.raises(ValueError, match=match):
    validate(overridden(_tiny_classification(), overrides))


def test_chunked_steps_compile_once_and_follow_the_single_steps():
  """Chunks of 3, 1 and 2 minibatch steps (batches drawn inside the program, from (seed,
  step)) trace the program once and track make_train_step over the same batches."""
  import chex
  import jax

  from ncjax.tasks import make_task
  from ncjax.train.state import create_states, make_loss, make_train_chunk, make_train_step

  config = base_config()
  config.update_from_flattened_dict({"data.modulus": 11, "model.kwargs.embed_dim": 8,
                                     "model.kwargs.hidden_dim": 16, "batch_size": 16,
                                     "num_seeds": 2})
  task = make_task(config)
  fresh = lambda: create_states(config, task.model, task.example_inputs, task.mesh)
  run = make_train_chunk(make_loss(config), task.mesh,
                         chex.assert_max_traces(task.draw_batch, n=1), 4)
  step = make_train_step(make_loss(config), task.mesh)
  chunked, feed, losses = fresh(), task.train_feed(0), []
  for first, count in ((0, 3), (3, 1), (4, 2)):
    chunked, loss = run(chunked, next(feed), first, count)
    assert np.isnan(np.asarray(loss)[count:]).all()
    losses.append(np.asarray(loss)[:count])
  stepped, stream, want = fresh(), task.train_stream(0), []
  for _ in range(6):
    stepped, loss = step(stepped, next(stream))
    want.append(np.asarray(loss))
  np.testing.assert_allclose(np.concatenate(losses), np.stack(want), rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               jax.device_get(chunked.params), jax.device_get(stepped.params))
