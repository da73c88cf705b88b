"""Image classifiers: an MLP, and with BatchNorm a small CNN, ResNet-18 (CIFAR stem),
Wide-ResNet-d-k.

Each maps images (n, H, W, C) to ``(logits (n, K), features (n, d))``, features being the
globally pooled penultimate representation and ``logits = features @ W^T + b`` (the
submodule ``head``). ``train=True`` uses batch statistics and updates ``batch_stats``
(``mutable=["batch_stats"]``); ``train=False`` uses the running averages (metrics).
``dtype`` is the compute dtype (parameters and BatchNorm statistics stay float32);
logits, features and the exposed block outputs are float32 whatever it is.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from ncjax.models.nets import Dtype, float32_outputs

LAYERS = "layers"


def _expose(module: nn.Module, x: jax.Array) -> None:
  """Records block output ``x`` (n, H, W, C) pooled to (n, C) when asked (see above)."""
  module.sow("intermediates", LAYERS, jnp.mean(x, axis=(1, 2), dtype=jnp.float32))


BN_MOMENTUM = 0.9  # running average = BN_MOMENTUM * running average + (1 - BN_MOMENTUM) * batch
_norm = functools.partial(nn.BatchNorm, momentum=BN_MOMENTUM, epsilon=1e-5)
_conv = functools.partial(nn.Conv, use_bias=False, kernel_init=nn.initializers.he_normal())


class CNN(nn.Module):
  """Two 3x3 conv blocks (conv, BatchNorm, ReLU, 2x2 max-pool), then a ReLU dense layer of
  ``features`` units and the linear head."""

  num_classes: int
  channels: tuple[int, ...] = (32, 64)
  features: int = 128
  head_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    for c in self.channels:
      y = _conv(c, (3, 3), dtype=self.dtype)(x)
      x = nn.relu(_norm(use_running_average=not train, dtype=self.dtype)(y))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
      _expose(self, x)
    features = nn.relu(nn.Dense(self.features, dtype=self.dtype)(x.reshape(x.shape[0], -1)))
    head = nn.Dense(self.num_classes, use_bias=self.head_bias, dtype=self.dtype, name="head")
    return float32_outputs(head(features), features)


class MLP(nn.Module):
  """The flattened image through ``depth - 1`` ReLU layers of ``width`` units, then the
  linear head (Omnigrok's MNIST model: width 200, depth 3). No BatchNorm."""

  num_classes: int
  width: int = 200
  depth: int = 3
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    features = x.reshape(x.shape[0], -1)
    for _ in range(self.depth - 1):
      features = nn.relu(nn.Dense(self.width, dtype=self.dtype)(features))
    return float32_outputs(nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features),
                           features)


class _BasicBlock(nn.Module):
  """Post-activation ResNet basic block (He et al. 2016)."""

  channels: int
  stride: int
  dtype: Dtype

  @nn.compact
  def __call__(self, x, train: bool):
    norm = functools.partial(_norm, use_running_average=not train, dtype=self.dtype)
    conv = functools.partial(_conv, self.channels, dtype=self.dtype)
    y = nn.relu(norm()(conv((3, 3), self.stride)(x)))
    y = norm(scale_init=nn.initializers.zeros)(conv((3, 3))(y))
    if x.shape[-1] != self.channels or self.stride != 1:
      x = norm()(conv((1, 1), self.stride)(x))
    return nn.relu(x + y)


class ResNet18(nn.Module):
  """ResNet-18 with the CIFAR stem (one 3x3 conv, no max-pool): 4 stages of 2 basic blocks,
  ``width`` x (1, 2, 4, 8) channels, global average pooling."""

  num_classes: int
  width: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    x = _conv(self.width, (3, 3), dtype=self.dtype)(x)
    x = nn.relu(_norm(use_running_average=not train, dtype=self.dtype)(x))
    for stage, multiple in enumerate((1, 2, 4, 8)):
      for block in range(2):
        stride = 2 if stage > 0 and block == 0 else 1
        x = _BasicBlock(self.width * multiple, stride, self.dtype)(x, train)
        _expose(self, x)
    features = jnp.mean(x, axis=(1, 2))
    return float32_outputs(nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features),
                           features)


class _WideBlock(nn.Module):
  """Pre-activation wide block (Zagoruyko & Komodakis 2016)."""

  channels: int
  stride: int
  dtype: Dtype

  @nn.compact
  def __call__(self, x, train: bool):
    norm = functools.partial(_norm, use_running_average=not train, dtype=self.dtype)
    conv = functools.partial(_conv, self.channels, dtype=self.dtype)
    out = nn.relu(norm()(x))
    shortcut = x
    if x.shape[-1] != self.channels or self.stride != 1:
      shortcut = conv((1, 1), self.stride)(out)
    y = conv((3, 3), self.stride)(out)
    y = conv((3, 3))(nn.relu(norm()(y)))
    return shortcut + y


class WideResNet(nn.Module):
  """WRN-depth-width: 3 stages of (depth - 4) / 6 pre-activation blocks with 16, 32, 64
  times ``width`` channels; final BatchNorm + ReLU, global average pooling."""

  num_classes: int
  depth: int = 28
  width: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    if (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6k + 4, got {self.depth}.")
    blocks = (self.depth - 4) // 6
    x = _conv(16, (3, 3), dtype=self.dtype)(x)
    for stage, channels in enumerate((16, 32, 64)):
      for block in range(blocks):
        stride = 2 if stage > 0 and block == 0 else 1
        x = _WideBlock(channels * self.width, stride, self.dtype)(x, train)
        _expose(self, x)
    x = nn.relu(_norm(use_running_average=not train, dtype=self.dtype)(x))
    features = jnp.mean(x, axis=(1, 2))
    return float32_outputs(nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features),
                           features)
