"""Flax modules returning ``(logits, features)``; the linear head is the submodule ``head``."""

from ncjax.models.nets import MODELS, EmbedMLP, Transformer, head_weights, make_model
