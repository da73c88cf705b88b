"""Models for the algorithmic tasks (``train`` is accepted and ignored). Each returns ``(logits (n, C), features (n, d))`` where
features are the penultimate representation and ``logits = features @ W^T + b``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class EmbedMLP(nn.Module):
  """Embeds a and b (``embed_dim`` each), concatenates, one ReLU layer, linear head."""

  vocab_size: int
  num_classes: int
  embed_dim: int = 128
  hidden_dim: int = 512

  @nn.compact
  def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
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
  def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    x = nn.Embed(self.vocab_size, self.d_model)(tokens)
    x = x + self.param("pos_embed", nn.initializers.normal(0.02), (tokens.shape[1], self.d_model))
    last = x[:, -1:]
    attn = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, name="attention")
    h = last + attn(last, x)
    h = h + nn.Dense(self.d_model)(nn.relu(nn.Dense(self.mlp_dim)(h)))
    features = h[:, 0]
    return nn.Dense(self.num_classes, name="head")(features), features
