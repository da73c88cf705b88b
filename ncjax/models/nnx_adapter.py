"""Flax NNX models as the pure ``(init, apply)`` pair the trainer uses (linen's contract).

A ``flax.nnx.Module`` whose ``__call__(inputs)`` returns ``(logits, features)`` and whose
linear head is the attribute ``head`` (an ``nnx.Linear``: kernel (d, C), as linen's
``Dense``) trains, checkpoints and is analysed like a linen model: its ``nnx.Param``
state is ``params`` and its ``nnx.BatchStat`` state ``batch_stats``, as plain nested
dicts. Train mode sets ``deterministic`` / ``use_running_average`` on its submodules.
Other NNX state (e.g. dropout's ``Rngs``) is fixed at construction. Logits and features
are returned in float32 whatever the module computes in.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from ncjax.models.nets import float32_outputs


class NNXModel:
  """``factory(rngs) -> nnx.Module`` as ``init(key, inputs, train=False) -> variables``
  and ``apply(variables, inputs, train=False, mutable=()) -> (logits, features)``
  (``, updates`` when ``mutable`` names ``batch_stats``)."""

  def __init__(self, factory: Callable[[nnx.Rngs], nnx.Module]):
    self.factory = factory
    self._graphdef, *states = nnx.split(nnx.eval_shape(lambda: factory(nnx.Rngs(0))),
                                        nnx.Param, nnx.BatchStat, ...)
    self._params, self._stats, self._rest = states

  def init(self, key: jax.Array, inputs: jax.Array, train: bool = False) -> dict:
    del inputs, train  # NNX modules are built with their shapes
    _, params, stats, _ = nnx.split(self.factory(nnx.Rngs(key)), nnx.Param, nnx.BatchStat,
                                    ...)  # type: ignore[misc]  # flax types it variadic
    stats = nnx.to_pure_dict(stats)
    return {"params": nnx.to_pure_dict(params), **({"batch_stats": stats} if stats else {})}

  def apply(self, variables: dict, inputs: jax.Array, train: bool = False,
            mutable=()):
    params, stats = nnx.clone(self._params), nnx.clone(self._stats)
    nnx.replace_by_pure_dict(params, variables["params"])
    if variables.get("batch_stats"):
      nnx.replace_by_pure_dict(stats, variables["batch_stats"])
    module = nnx.merge(self._graphdef, params, stats, self._rest)
    module.set_attributes(deterministic=not train, use_running_average=not train,
                          raise_if_not_found=False)
    out = float32_outputs(*module(inputs))
    if "batch_stats" in mutable:
      return out, {"batch_stats": nnx.to_pure_dict(nnx.state(module, nnx.BatchStat))}
    return out


def as_model(model):
  """``model`` itself (a linen module, an :class:`NNXModel`), or an ``nnx.Module``
  instance as an :class:`NNXModel` that starts every member from that instance's
  parameters."""
  if not isinstance(model, nnx.Module):
    return model
  graphdef, state = nnx.split(model)
  return NNXModel(lambda rngs: nnx.merge(graphdef, state))
