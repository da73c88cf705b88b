"""Models for the algorithmic tasks (``train`` is accepted and ignored). Each returns
``(logits (n, C), features (n, d))`` where features are the penultimate representation
and ``logits = features @ W^T + b``. ``dtype`` is the compute dtype (parameters stay
float32); logits and features are returned in float32 whatever it is."""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def float32_outputs(logits: jax.Array, features: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(logits, features)`` cast to float32: the loss and the metrics never see bfloat16."""
  return logits.astype(jnp.float32), features.astype(jnp.float32)


class EmbedMLP(nn.Module):
  """Embeds a and b (``embed_dim`` each), concatenates, one ReLU layer, linear head."""

  vocab_size: int
  num_classes: int
  embed_dim: int = 128
  hidden_dim: int = 512
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    # [E_a, E_b] W + c = (E W_top + c)_a + (E W_bottom)_b: the layer is applied to the V
    # vocabulary rows once (block rows [E, 0] and [0, E]), then gathered per example:
    # V x 2d x hidden operations instead of n x 2d x hidden (same parameters).
    v, d = self.vocab_size, self.embed_dim
    table = nn.Embed(v, d, dtype=self.dtype)(jnp.arange(v))
    zeros = jnp.zeros_like(table)
    dense = nn.Dense(self.hidden_dim, dtype=self.dtype)
    rows = dense(jnp.concatenate([jnp.concatenate([table, zeros], 1),
                                  jnp.concatenate([zeros, table], 1),
                                  jnp.zeros((1, 2 * d), table.dtype)]))  # (2V + 1, hidden)
    features = nn.relu(rows[tokens[:, 0]] + (rows[v + tokens[:, 1]] - rows[-1]))
    return float32_outputs(nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features),
                           features)


def _normal(std: float):
  return nn.initializers.normal(std)


class Transformer(nn.Module):
  """The one-layer transformer of Nanda et al. (2023), "Progress measures for grokking",
  as in their public code, which Song et al. (2024) train:

  - token and learned position embeddings, N(0, 1/d_model) each;
  - causal attention, ``num_heads`` heads of d_model/num_heads, Q, K, V and O without
    biases, all N(0, 1/d_model), scores scaled by 1/sqrt(d_head);
  - a ReLU MLP ``d_model -> mlp_dim -> d_model`` with zero-initialised biases, both weights
    N(0, 1/d_model) (the output weight too, not 1/mlp_dim);
  - residual connections, no LayerNorm;
  - an unembedding without bias, N(0, 1/vocab) with vocab = p + 1.

  One deliberate difference: the reference unembeds to all p + 1 tokens (the ``=`` token
  is a possible output no label uses); here the head has the p classes only, so that its
  rows are the class vectors the collapse metrics compare with the class means. The
  reference also takes its cross-entropy in float64; training here is float32.

  Only the last position feeds the readout and the model has one layer, so only its query
  is computed and only it goes through the MLP: the same function at a third of the cost.
  """

  vocab_size: int
  num_classes: int
  d_model: int = 128
  num_heads: int = 4
  mlp_dim: int = 512
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    d, h = self.d_model, self.num_heads
    if d % h:
      raise ValueError(f"d_model ({d}) must be a multiple of num_heads ({h}).")
    scale = d**-0.5
    param = lambda name, init, shape: self.param(name, init, shape).astype(self.dtype)
    dense = functools.partial(nn.Dense, kernel_init=_normal(scale), dtype=self.dtype)
    x = param("embed", _normal(scale), (self.vocab_size, d))[tokens]
    x = x + param("pos_embed", _normal(scale), (tokens.shape[1], d))
    qkv = param("qkv", _normal(scale), (3, d, h, d // h))
    q = jnp.einsum("nd,dhk->nhk", x[:, -1], qkv[0])
    k, v = (jnp.einsum("ntd,dhk->nthk", x, w) for w in qkv[1:])
    # The last position attends to every position: the causal mask removes nothing.
    attn = jax.nn.softmax(jnp.einsum("nhk,nthk->nht", q, k) * (d // h) ** -0.5, axis=-1)
    z = jnp.einsum("nht,nthk->nhk", attn, v)
    resid = x[:, -1] + jnp.einsum("nhk,hkd->nd", z, param("out", _normal(scale), (h, d // h, d)))
    hidden = nn.relu(dense(self.mlp_dim, name="mlp_in")(resid))
    features = resid + dense(d, name="mlp_out")(hidden)
    head = nn.Dense(self.num_classes, use_bias=False, kernel_init=_normal(self.vocab_size**-0.5),
                    dtype=self.dtype, name="head")
    return float32_outputs(head(features), features)


class FlaxTransformer(Transformer):
  """The same sizes as :class:`Transformer` built from flax's default layers (the model
  ncjax shipped as ``transformer`` before it matched Nanda et al.): biases everywhere,
  LeCun-normal initialisation, position embeddings N(0, 0.02^2), a head with bias.
  Readout at the last position, which alone goes through the MLP."""

  @nn.compact
  def __call__(self, tokens: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
    x = nn.Embed(self.vocab_size, self.d_model, dtype=self.dtype)(tokens)
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (tokens.shape[1], self.d_model))
    x = x + pos.astype(self.dtype)
    last = x[:, -1:]
    attn = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype,
                                           name="attention")
    h = last + attn(last, x)
    dense = functools.partial(nn.Dense, dtype=self.dtype)
    h = h + dense(self.d_model)(nn.relu(dense(self.mlp_dim)(h)))
    features = h[:, 0]
    return float32_outputs(dense(self.num_classes, name="head")(features), features)
