"""Flax modules returning ``(logits, features)``; the linear head is the submodule ``head``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ncjax.models.nets import EmbedMLP, FlaxTransformer, Transformer
from ncjax.models.vision import CNN, MLP, ResNet18, WideResNet

MODELS = {"mlp": EmbedMLP, "transformer": Transformer, "flax_transformer": FlaxTransformer,
          "image_mlp": MLP, "cnn": CNN, "resnet18": ResNet18, "wrn": WideResNet}
LAYERED = ("cnn", "resnet18", "wrn")  # models exposing every block's output (vision.LAYERS)


def make_model(name: str, num_classes: int, **kwargs) -> nn.Module:
  """The model called ``name`` (a key of MODELS) with ``num_classes`` outputs."""
  if name not in MODELS:
    raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}.")
  return MODELS[name](num_classes=num_classes, **kwargs)


def head_weights(params) -> tuple[jax.Array, jax.Array]:
  """The head's weight matrix W (C, d) and bias b (C,) (zeros without a bias) from a
  model's params (leading axes, e.g. seeds, are kept)."""
  head = params["head"]
  w = jnp.swapaxes(head["kernel"], -1, -2)
  return w, head.get("bias", jnp.zeros(w.shape[:-1], w.dtype))
