"""Progress measures of grokking beside the information metrics (Nanda et al. 2023,
"Progress measures for grokking via mechanistic interpretability"): pure functions.

- :func:`weight_norm`: the global L2 norm of the parameters (weight decay's clock);
- :func:`fourier_losses`: for a+b mod p, the restricted loss (the logits kept only along
  the key frequencies) and the excluded loss (the key frequencies removed).

For a+b the logits of a Fourier-multiplication network depend on (a, b) through
cos(w_k (a + b)) and sin(w_k (a + b)), w_k = 2 pi k / p, for a few key frequencies k.
Both directions depend on a + b mod p only, so the projection of the (p, p, C) logits
onto them is a projection of their sums along the p anti-diagonals.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ncjax import _validation as check
from ncjax.losses import cross_entropy

__all__ = ["weight_norm", "fourier_losses"]


def weight_norm(params) -> jax.Array:
  """sqrt of the sum of squares of every leaf of ``params``: a float32 (or wider)
  scalar, computed in units of the largest entry, so leaves of 1e30 (or float16 leaves
  of 300, whose squares overflow float16) do not overflow. NaN or Inf leaves give NaN or
  Inf (as measured: the trainer logs it).

  Args:
    params: a pytree of (real or integer) arrays; a leaf that is not (e.g. a string)
      raises, naming its path.
  Returns:
    () float32 (or wider) norm.

  >>> import jax.numpy as jnp
  >>> float(weight_norm({"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}))
  5.0
  """
  leaves = [check.array(x, f"params{jax.tree_util.keystr(path)}")
            for path, x in jax.tree_util.tree_leaves_with_path(params)]
  leaves = [x.astype(jnp.promote_types(x.dtype, jnp.float32)) for x in leaves]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  top = jax.lax.stop_gradient(jnp.max(jnp.stack([jnp.max(jnp.abs(x), initial=0)
                                                 for x in leaves])))
  unit = jnp.where((top > 0) & jnp.isfinite(top), top, 1.0)
  return unit * optax.tree.norm([x / unit for x in leaves])


def fourier_losses(logits: jax.Array, train_mask: jax.Array, *,
                   num_frequencies: int | jax.Array) -> dict[str, jax.Array]:
  """Restricted and excluded losses of a+b mod p.

  Key frequencies: the ``num_frequencies`` k in 1..p//2 whose directions cos(w_k (a+b)),
  sin(w_k (a+b)) carry the most squared norm of the centred logits, chosen at each call
  (Nanda et al. read them off the trained network's neurons once; with a fixed set
  early-training values differ).

  Args:
    logits: (p * p, C) over every pair, row a * p + b; the label of row (a, b) is
      (a + b) mod p (C = p).
    train_mask: (p * p,) bool, the train pairs.
    num_frequencies: integer K in [1, p // 2]; may be traced (a vmapped sweep of K);
      a float (also 2.0) raises.
  Returns:
    ``restricted_loss``: cross-entropy over all pairs of the logits' key-frequency
    component plus their per-class mean; ``excluded_loss``: cross-entropy over the train
    pairs of the logits with that component removed; ``key_fraction``: the fraction of
    the centred logits' squared norm along the key frequencies.

  >>> import jax.numpy as jnp
  >>> p = 5
  >>> a, b, c = jnp.arange(p)[:, None, None], jnp.arange(p)[None, :, None], jnp.arange(p)
  >>> logits = jnp.cos(2 * jnp.pi * (a + b - c) / p).reshape(p * p, p)  # frequency 1 only
  >>> out = fourier_losses(logits, jnp.ones(p * p, bool), num_frequencies=1)
  >>> sorted(out), round(float(out["key_fraction"]), 4)
  (['excluded_loss', 'key_fraction', 'restricted_loss'], 1.0)
  """
  logits = check.real_floating(logits, "logits")
  if logits.ndim != 2 or logits.shape[0] != logits.shape[1] ** 2:
    raise ValueError(f"logits must have shape (p * p, p), got {logits.shape}.")
  n, p = logits.shape
  train_mask = check.as_mask(train_mask, n, "train_mask")
  check.finite(logits, "logits")
  num_frequencies = check.integer_scalar(num_frequencies, "num_frequencies")
  if check.is_concrete(num_frequencies) and not 1 <= num_frequencies <= p // 2:
    raise ValueError(f"num_frequencies must be in [1, {p // 2}], got {num_frequencies}.")
  a, b = jnp.divmod(jnp.arange(n), p)
  s = (a + b) % p
  mean = jnp.mean(logits, axis=0)
  centred = logits - mean
  # Energies in units of the largest centred logit: no overflow of squares at 1e30.
  unit = jnp.max(jnp.abs(centred))
  unit = jnp.where(unit > 0, unit, 1.0)
  sums = jax.ops.segment_sum(centred, s, num_segments=p)  # (p, C): per a + b mod p
  k = np.arange(1, p // 2 + 1)
  # The angles reduced exactly (k s mod p, in integers), then unit directions over the
  # p * p pairs (each s appears p times). At k = p / 2 (p even) the sine is 0 exactly;
  # in floating point sin(pi) is not, and normalising it would invent a direction.
  angle = 2 * np.pi * (np.outer(k, np.arange(p)) % p) / p  # (K_all, p), float64
  basis = np.stack([np.cos(angle), np.sin(angle) * (2 * k != p)[:, None]], 1)  # (K_all, 2, p)
  norms = np.sqrt(p * np.sum(basis**2, axis=-1, keepdims=True))
  units = jnp.asarray(basis / np.where(norms > 0, norms, 1), logits.dtype)
  coef = jnp.einsum("kjs,sc->kjc", units, sums)  # (K_all, 2, C)
  energy = jnp.sum((coef / unit) ** 2, axis=(1, 2))
  # The num_frequencies largest energies (ties: the lower k), as a mask: K may be traced.
  rank = jnp.argsort(jnp.argsort(-energy, stable=True), stable=True)
  key = (rank < num_frequencies).astype(logits.dtype)
  component = jnp.einsum("kjc,kjs,k->sc", coef, units, key)[s]  # (p * p, C)
  total = jnp.sum((centred / unit) ** 2)
  return {"restricted_loss": cross_entropy(component + mean, s),  # label of (a, b): s
          "excluded_loss": cross_entropy(logits - component, s, mask=train_mask),
          "key_fraction": jnp.sum(energy * key) / jnp.maximum(total, jnp.finfo(total.dtype).tiny)}
