"""Flax modules returning ``(logits, features)``; the linear head is the submodule ``head``.

Besides the names of :data:`MODELS`, ``make_model`` takes ``"package.module:Name"``: a
linen module class, or a ``flax.nnx.Module`` class or factory; NNX models are adapted by :mod:`ncjax.models.nnx_adapter`.
"""

from __future__ import annotations

import importlib
import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from ncjax.models.nets import EmbedMLP, FlaxTransformer, Transformer
from ncjax.models.nnx_adapter import NNXModel
from ncjax.models.vision import CNN, MLP, ResNet18, WideResNet

MODELS = {"mlp": EmbedMLP, "transformer": Transformer, "flax_transformer": FlaxTransformer,
          "image_mlp": MLP, "cnn": CNN, "resnet18": ResNet18, "wrn": WideResNet}
LAYERED = ("cnn", "resnet18", "wrn")  # models exposing every block's output (vision.LAYERS)


def _imported(name: str):
  module, _, attr = name.partition(":")
  try:
    return getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"model {name!r}: cannot import it ({e}).") from e


def make_model(name: str, num_classes: int, dtype: str = "float32",
               **kwargs) -> nn.Module | NNXModel:
  """The model called ``name`` (a key of MODELS, or ``"package.module:Name"``: a linen
  class, or an NNX class or factory called with ``num_classes``, ``rngs`` and ``kwargs``)
  with ``num_classes`` outputs, computing in ``dtype`` (float32 parameters). An imported
  model is passed ``dtype`` only when it is not float32."""
  if dtype != "float32":
    kwargs["dtype"] = jnp.dtype(dtype)
  if ":" not in name:
    if name not in MODELS:
      raise ValueError(f"model must be one of {sorted(MODELS)} or 'package.module:Name', "
                       f"got {name!r}.")
    return MODELS[name](num_classes=num_classes, **kwargs)
  target = _imported(name)
  if inspect.isclass(target) and issubclass(target, nn.Module):
    return target(num_classes=num_classes, **kwargs)
  built = nnx.eval_shape(lambda: target(num_classes=num_classes, rngs=nnx.Rngs(0), **kwargs))
  if not isinstance(built, nnx.Module):
    raise ValueError(f"model {name!r} built a {type(built).__name__}, not a Flax module.")
  return NNXModel(lambda rngs: target(num_classes=num_classes, rngs=rngs, **kwargs))


def head_weights(params) -> tuple[jax.Array, jax.Array]:
  """The head's weight matrix W (C, d) and bias b (C,) (zeros without a bias) from a
  model's params (leading axes, e.g. seeds, are kept)."""
  head = params["head"]
  w = jnp.swapaxes(head["kernel"], -1, -2)
  return w, head.get("bias", jnp.zeros(w.shape[:-1], w.dtype))
