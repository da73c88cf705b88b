"""Models for the algorithmic tasks. Each returns ``(logits (n, C), features (n, d))`` where
features are the penultimate representation and ``logits = features @ W^T + b``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections


class EmbedMLP(nn.Module):
  """Embeds a and b (``embed_dim`` each), concatenates, one ReLU layer, linear head."""

  vocab_size: int
  num_classes: int
  embed_dim: int = 128
  hidden_dim: int = 512

  @nn.compact
  def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = nn.Embed(self.vocab_size, self.embed_dim)(tokens[:, :2]).reshape(tokens.shape[0], -1)
    features = nn.relu(nn.Dense(self.hidden_dim)(x))
    return nn.Dense(self.num_classes, name="head")(features), features


class Transformer(nn.Module):
  """One-layer transformer (Nanda et al. / Song et al.): token and position embeddings,
  multi-head attention and a ReLU MLP with residuals, read out at the last position.

  Only the last position feeds the readout, so its query alone is attended and only it
  goes through the MLP: the same function as the full layer at a third of the MLP cost.
  """

  vocab_size: int
  num_classes: int
  d_model: int = 128
  num_heads: int = 4
  mlp_dim: int = 512

  @nn.compact
  def __call__(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = nn.Embed(self.vocab_size, self.d_model)(tokens)
    x = x + self.param("pos_embed", nn.initializers.normal(0.02), (tokens.shape[1], self.d_model))
    last = x[:, -1:]
    attn = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, name="attention")
    h = last + attn(last, x)
    h = h + nn.Dense(self.d_model)(nn.relu(nn.Dense(self.mlp_dim)(h)))
    features = h[:, 0]
    return nn.Dense(self.num_classes, name="head")(features), features


MODELS = {"mlp": EmbedMLP, "transformer": Transformer}


def make_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The model named by ``config.model`` for a task with ``config.modulus`` classes."""
  if config.model not in MODELS:
    raise ValueError(f"config.model must be one of {sorted(MODELS)}, got {config.model!r}.")
  return MODELS[config.model](vocab_size=config.modulus + 1, num_classes=config.modulus,
                              **config.model_kwargs.to_dict())


def head_weights(params) -> tuple[jax.Array, jax.Array]:
  """The head's weight matrix W (C, d) and bias b (C,) from a model's params."""
  head = params["head"]
  return jnp.swapaxes(head["kernel"], -1, -2), head["bias"]
