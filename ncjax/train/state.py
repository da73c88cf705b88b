"""The train state (parameters, BatchNorm statistics, optimiser), the optimiser from the
config, and the jitted train step with the loss injected by the task."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh

from ncjax import losses, optim
from ncjax.data import Batch
from ncjax.models import head_weights
from ncjax.models.nnx_adapter import as_model
from ncjax.train import meshes
from ncjax.train.config import member_seeds


class TrainState(train_state.TrainState):
  """flax's TrainState plus ``batch_stats`` (BatchNorm running averages; {} if none)."""

  batch_stats: dict


def variables(state: TrainState) -> dict:
  """The variables ``model.apply`` takes for ``state`` (eval mode)."""
  return {"params": state.params, **({"batch_stats": state.batch_stats}
                                     if state.batch_stats else {})}


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW or SGD (momentum, Nesterov) with a constant, cosine or step schedule after a linear
  warm-up, decoupled or L2 weight decay; first an optional Grokfast filter of the
  gradient (:mod:`ncjax.optim`), then optional global-norm clipping."""
  o = config.optim
  if o.schedule == "cosine":
    lr = optax.warmup_cosine_decay_schedule(0.0, config.lr, o.warmup_steps, config.steps)
  elif o.schedule == "constant" and not o.warmup_steps:
    lr = config.lr
  else:
    decays = {config.steps // 3: 0.1, 2 * config.steps // 3: 0.1} if o.schedule == "step" else {}
    lr = optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, o.warmup_steps),
         optax.piecewise_constant_schedule(config.lr, {k - o.warmup_steps: v
                                                      for k, v in decays.items()})],
        [o.warmup_steps])
  decay = optax.add_decayed_weights(config.weight_decay)
  if o.name == "adamw":
    direction = optax.scale_by_adam(b1=o.betas[0], b2=o.betas[1])
  else:
    direction = optax.trace(decay=o.momentum, nesterov=o.nesterov)
  # Decoupled: lr * wd * w added after the adaptive/momentum direction (AdamW, SGDW).
  # L2: wd * w added to the gradient, so it goes through momentum (and Adam's scaling).
  chain = [direction, decay] if o.decoupled_weight_decay else [decay, direction]
  grokfast = []  # only the chosen filter is built (and checks its own arguments)
  if o.grokfast == "ema":
    grokfast = [optim.grokfast_ema(o.grokfast_alpha, o.grokfast_lamb)]
  elif o.grokfast == "ma":
    grokfast = [optim.grokfast_ma(o.grokfast_window, o.grokfast_lamb)]
  clip = [] if o.grad_clip is None else [optax.clip_by_global_norm(o.grad_clip)]
  tx = optax.chain(*grokfast, *clip, *chain, optax.scale_by_learning_rate(lr))
  if config.freeze == "backbone":  # a linear probe: only the head moves
    tx = optax.multi_transform({"head": tx, "frozen": optax.set_to_zero()},
                               lambda params: {k: "head" if k == "head" else "frozen"
                                               for k in params})
  return tx


def create_states(config: ml_collections.ConfigDict, model,
                  example_inputs: jax.Array, mesh: Mesh) -> TrainState:
  """One TrainState with a leading member axis (M members, see
  :func:`ncjax.train.config.member_seeds`), sharded over the mesh's ``members`` axis and
  replicated over ``data``; member i is initialised from its seed (or from
  ``config.init_seed`` for all), every parameter times ``config.model.init_scale``.
  ``example_inputs``: (1, ...) of the task's inputs. ``model``: linen, an
  :class:`ncjax.models.nnx_adapter.NNXModel` or an ``nnx.Module`` instance."""
  model = as_model(model)
  tx = make_optimizer(config)

  def create(key):
    init = model.init(key, example_inputs, train=False)
    params = jax.tree.map(lambda p: p * config.model.init_scale, init["params"])
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                             batch_stats=init.get("batch_stats", {}))

  seeds = member_seeds(config)
  if config.init_seed is not None:
    seeds = [config.init_seed] * len(seeds)
  create_all = jax.jit(jax.vmap(lambda seed: create(jax.random.key(seed))),
                       out_shardings=meshes.members_sharding(mesh))
  return create_all(np.asarray(seeds, np.uint32))


def abstract_states(config: ml_collections.ConfigDict, model,
                    example_inputs: jax.Array, mesh: Mesh) -> TrainState:
  """The shapes, dtypes and shardings of :func:`create_states` without computing it: the
  target a checkpoint is restored onto (any topology it was saved on)."""
  shapes = jax.eval_shape(lambda: create_states(config, model, example_inputs, mesh))
  sharding = meshes.members_sharding(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      shapes)


def transplant(states: TrainState, source: dict, mesh: Mesh) -> TrainState:
  """``states`` with every parameter and BatchNorm statistic but the head's taken from
  ``source`` (:func:`ncjax.train.checkpoints.restore_weights` of another run with the
  same backbone); the head keeps its fresh initialisation (a new class set). A source
  with one seed starts every seed; otherwise the seed counts must match.

  Raises:
    ValueError: the backbones differ (structure or shapes), or the seed counts.
  """
  seeds = jnp.shape(states.step)[0]

  def take(new, old):
    old = np.asarray(old, new.dtype)
    if old.shape[0] == 1 and seeds > 1:
      old = np.broadcast_to(old, (seeds, *old.shape[1:]))
    if old.shape != new.shape:
      raise ValueError(f"init_from: a parameter has shape {old.shape[1:]} for "
                       f"{old.shape[0]} seed(s) there, {new.shape[1:]} for {seeds} here.")
    return old

  try:
    params = {k: v if k == "head" else jax.tree.map(take, v, source["params"][k])
              for k, v in states.params.items()}
    batch_stats = jax.tree.map(take, states.batch_stats, source["batch_stats"])
  except (KeyError, TypeError) as e:
    raise ValueError(f"init_from: the run there has a different model ({e}).") from e
  sharding = meshes.members_sharding(mesh)
  return states.replace(params=meshes.put(params, sharding),
                        batch_stats=meshes.put(batch_stats, sharding))


LossFn = Callable[..., jax.Array]


def make_loss(config: ml_collections.ConfigDict) -> LossFn:
  """``loss(logits, features, head, batch, **swept) -> scalar`` from ``config.loss`` (see
  :func:`ncjax.losses.supervised_loss`); ``swept`` overrides loss options per member."""
  options = config.loss.to_dict()
  return lambda logits, features, head, batch, **swept: losses.supervised_loss(
      logits, batch.labels, features, head, mask=batch.mask, **(options | swept))


def _member_step(loss_fn: LossFn, train_mode: bool):
  """``step(options, state, batch) -> (state, loss)`` of one member (unjitted)."""

  def step(options: dict, state: TrainState, batch: Batch):
    def objective(params):
      if not train_mode:  # a frozen backbone: no backward pass through it
        params = {k: v if k == "head" else jax.lax.stop_gradient(v) for k, v in params.items()}
      v = variables(state.replace(params=params))
      if state.batch_stats and train_mode:
        (logits, features), updates = state.apply_fn(v, batch.inputs, train=True,
                                                     mutable=["batch_stats"])
      else:
        (logits, features), updates = state.apply_fn(v, batch.inputs, train=train_mode), {}
      return loss_fn(logits, features, head_weights(params)[0], batch, **options), updates

    (loss, updates), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    if updates:
      state = state.replace(batch_stats=updates["batch_stats"])
    return state, loss

  return step


def _members_options(loss_options: Mapping | None, mesh: Mesh) -> dict:
  return meshes.put({k: np.asarray(v) for k, v in (loss_options or {}).items()},
                    meshes.members_sharding(mesh))


def make_train_step(loss_fn: LossFn, mesh: Mesh, *, train_mode: bool = True,
                    loss_options: Mapping[str, jax.typing.ArrayLike] | None = None):
  """A jitted ``step(states, batches) -> (states, loss (M,))`` vmapped over members, SPMD
  over ``mesh`` (:mod:`ncjax.train.meshes`): states sharded over ``members``, batches
  (M, B, ...) over ``members`` x ``data``; the gradient is that of the global batch
  (BatchNorm statistics too), the loss comes back replicated.

  ``loss_fn(logits, features, head, batch, **options) -> scalar`` (``head``: the (C, d)
  head rows). States and batches carry a leading member axis; ``loss_options``: optional
  ``{name: (M,) array}``, each member's own value of those loss options (a vmapped sweep,
  :func:`ncjax.train.config.swept_loss_options`). ``train_mode``: the model runs in train
  mode (BatchNorm batch statistics, updated in the state); False (a frozen backbone, a
  linear probe) keeps the running averages and differentiates the head only. ``states``
  is donated.
  """
  members = meshes.members_sharding(mesh)
  jitted = jax.jit(jax.vmap(_member_step(loss_fn, train_mode)),
                   in_shardings=(members, members, meshes.batch_sharding(mesh)),
                   out_shardings=(members, meshes.replicated(mesh)), donate_argnums=1)
  options = _members_options(loss_options, mesh)
  return meshes.serialized(functools.partial(jitted, options), mesh)  # (states, batches)


def make_train_chunk(loss_fn: LossFn, mesh: Mesh, draw: Callable[[object, jax.Array], Batch],
                     length: int, *, train_mode: bool = True,
                     loss_options: Mapping[str, jax.typing.ArrayLike] | None = None):
  """``run(states, data, first, count) -> (states, losses (length, M))``: ``count`` <=
  ``length`` consecutive train steps ``first, first + 1, ...`` in one jitted program (a
  ``lax.fori_loop`` on device: no host round-trip between steps), the step as in
  :func:`make_train_step` (same arguments). Step t's batches (M, B, ...) are
  ``draw(data, t)``, traced (``data``: a pytree of global arrays, the task's). Row i of
  ``losses`` is step ``first + i``'s loss (M,), rows from ``count`` on are NaN.

  ``first`` and ``count`` (ints) are traced: the program compiles once for every chunk
  (and draws compile with it). ``states`` is donated.
  """
  step = jax.vmap(_member_step(loss_fn, train_mode))
  batch_sharding = meshes.batch_sharding(mesh)

  def run(options: dict, states: TrainState, data, first: jax.Array, count: jax.Array):
    def body(i, carry):
      states, losses = carry
      batch = jax.lax.with_sharding_constraint(draw(data, first + i), batch_sharding)
      states, loss = step(options, states, batch)
      return states, losses.at[i].set(loss)

    losses = jnp.full((length, jnp.shape(states.step)[0]), jnp.nan, jnp.float32)
    return jax.lax.fori_loop(0, count, body, (states, losses))

  jitted = jax.jit(run, out_shardings=(meshes.members_sharding(mesh), meshes.replicated(mesh)),
                   donate_argnums=1)
  options = _members_options(loss_options, mesh)
  return meshes.serialized(functools.partial(jitted, options), mesh)
