"""A user's Flax NNX model for the grokking task (importable as ``tests.nnx_models:NNXMLP``)."""

import jax.numpy as jnp
from flax import nnx


class NNXMLP(nnx.Module):
  """Embedding MLP: (logits, features); the head is ``self.head``."""

  def __init__(self, num_classes: int, *, rngs: nnx.Rngs, vocab_size: int,
               embed_dim: int = 16, hidden_dim: int = 32):
    self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
    self.hidden = nnx.Linear(2 * embed_dim, hidden_dim, rngs=rngs)
    self.head = nnx.Linear(hidden_dim, num_classes, rngs=rngs)

  def __call__(self, inputs):
    x = self.embed(inputs[..., :2]).reshape(*inputs.shape[:-1], -1)
    features = nnx.relu(self.hidden(x))
    return self.head(features), features


def bn_factory(num_classes: int, *, rngs: nnx.Rngs, vocab_size: int, hidden_dim: int = 32):
  """A factory of an NNX model with BatchNorm (running statistics in batch_stats)."""
  return NNXBatchNorm(num_classes, rngs=rngs, vocab_size=vocab_size, hidden_dim=hidden_dim)


class NNXBatchNorm(NNXMLP):

  def __init__(self, num_classes, *, rngs, vocab_size, hidden_dim=32):
    super().__init__(num_classes, rngs=rngs, vocab_size=vocab_size, hidden_dim=hidden_dim)
    self.norm = nnx.BatchNorm(hidden_dim, rngs=rngs)

  def __call__(self, inputs):
    x = self.embed(inputs[..., :2]).reshape(*inputs.shape[:-1], -1)
    features = nnx.relu(self.norm(self.hidden(x)))
    return self.head(features), jnp.asarray(features)
