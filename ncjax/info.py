"""Matrix-information metrics (Song et al. 2024) on cosine Gram matrices, in nats.

``H(K) = -tr(K' log K')`` with ``K' = K / tr K``; for features ``z`` the kernel is the
cosine Gram ``G(z)``. Joint entropy is that of the Hadamard product ``G(z1) o G(z2)``.
Every function is pure and works under ``jit``, ``vmap`` and ``grad``; ``mask`` (n,)
bool drops padded rows. Bad inputs raise ``ValueError`` (see ``ncjax._validation``
for what is checked eagerly and what under ``jit``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ncjax import _validation as check
from ncjax import kernels, spectral


def _normalized_by(h: jax.Array, mask: jax.Array, normalized: bool) -> jax.Array:
  return h / jnp.log(jnp.sum(mask)) if normalized else h


def gram_entropy(
    k: jax.Array, *, mask: jax.Array | None = None, normalized: bool = False
) -> jax.Array:
  """Matrix entropy of a PSD kernel matrix after trace normalisation.

  Args:
    k: (n, n) symmetric PSD, n >= 2.
    mask: optional (n,) bool; False rows/columns are dropped.
    normalized: divide by log(number of unmasked rows), giving a value in [0, 1].
  Returns:
    Scalar entropy in nats (or normalised).
  """
  k = check.features(k, "k")
  if k.shape[0] != k.shape[1]:
    raise ValueError(f"k must be square (n, n), got shape {k.shape}.")
  mask = check.as_mask(mask, k.shape[0])
  check.finite(k, "k", mask)
  check.enough_rows(mask)
  check.psd(k, mask, "k")
  keep = mask[:, None] & mask[None, :]
  return _normalized_by(spectral.psd_entropy(jnp.where(keep, k, 0.0)), mask, normalized)


def matrix_entropy(
    z: jax.Array, *, mask: jax.Array | None = None, normalized: bool = False
) -> jax.Array:
  """Matrix entropy H(G(z)) of the cosine Gram of features.

  Uses the d x d covariance ``Zn^T Zn`` when d < n (same nonzero spectrum as the
  n x n Gram), else the Gram itself; the route is fixed by the static shapes.

  Args:
    z: (n, d) features, n >= 2, no all-zero unmasked rows.
    mask: optional (n,) bool; False marks padded rows.
    normalized: divide by log(number of unmasked rows), giving a value in [0, 1].
  Returns:
    Scalar in [0, log n]; log n for orthonormal rows, 0 when all rows are parallel.
  """
  (z,), mask = check.feature_inputs(mask, z=z)
  h = spectral.factor_entropy(kernels.normalize_rows(z, mask))
  return _normalized_by(h, mask, normalized)


# Largest n x (d1 d2) Kronecker feature block formed at once (elements); beyond it the
# moment matrix is accumulated over row chunks of this size.
KRON_BLOCK = 1 << 24
# Above this many Kronecker columns (d1 d2), joint entropies with d1 d2 < n use SLQ (fixed
# key; see :func:`joint_entropy_slq`): the exact moment costs 2 n (d1 d2)^2 flops, SLQ at
# its defaults 292 Hadamard matvecs of 4 n d1 d2, so SLQ is 2.6x cheaper here and 7x at
# d1 d2 = 4096; below it the exact route is kept (exact, and at most 2.6x dearer).
# Read at trace time: after changing it, call jax.clear_caches().
SLQ_COLUMNS = 1536


def _joint(zn1: jax.Array, zn2: jax.Array, mask: jax.Array, exact: bool = False) -> jax.Array:
  """Entropy of G1 o G2 from normalised rows (zero where masked), never n x n when
  d1 d2 < n.

  d1 d2 >= n: the n x n Gram. Else the (d1 d2) x (d1 d2) moment of the Kronecker features
  (chunked over rows beyond KRON_BLOCK elements; symmetric features when ``zn2 is zn1``),
  or SLQ when d1 d2 > SLQ_COLUMNS and not ``exact``.
  """
  n, d1 = zn1.shape
  d2 = zn2.shape[1]
  if d1 * d2 >= n:
    gram = lambda zn: kernels.matmul(zn, zn.T)
    return spectral.psd_entropy(gram(zn1) * gram(zn2))
  if d1 * d2 > SLQ_COLUMNS and zn2 is not zn1 and not exact:
    return _joint_slq(zn1, zn2, mask, jax.random.key(0))[0]
  if n * d1 * d2 <= KRON_BLOCK and zn2 is not zn1:
    return spectral.factor_entropy(kernels.hadamard_features(zn1, zn2))
  chunk = max(1, min(n, KRON_BLOCK // (d1 * d2)))
  return spectral.psd_entropy(kernels.hadamard_moment(zn1, zn2, chunk))


def _joint_slq(zn1, zn2, mask, key, **options) -> tuple[jax.Array, jax.Array]:
  """H = log t - tr(K log K) / t for K = G1 o G2, t = tr K = rows kept."""
  t = jnp.sum(mask).astype(zn1.dtype)
  trace, stderr = spectral.slq_trace_xlogx(kernels.hadamard_matvec(zn1, zn2), zn1.shape[0],
                                           t, key, dtype=zn1.dtype, **options)
  return jnp.log(t) - trace / t, stderr / t


def joint_entropy_slq(
    z1: jax.Array, z2: jax.Array, key: jax.Array, *, mask: jax.Array | None = None,
    rank: int | None = None, power: int = 1, num_probes: int = 10, order: int = 10,
) -> tuple[jax.Array, jax.Array]:
  """Joint entropy H(G(z1) o G(z2)) by deflated stochastic Lanczos quadrature (matfree),
  for n and d1 d2 too large for the exact routes; only Hadamard matvecs, O(n (d1 + d2))
  memory. See :func:`ncjax.spectral.slq_trace_xlogx` for the estimator and its error.

  The kernel has rank <= d1 d2: when the deflation would hold all of it (``rank`` >=
  d1 d2), there is nothing left to estimate and the exact Kronecker route is taken
  (standard error 0).

  Args:
    z1: (n, d1); z2: (n, d2); key: PRNG key; mask: optional (n,) bool.
    rank: deflated top-spectrum size (None: min(64, n - order)); power: subspace
    iterations on the sketch; num_probes, order: SLQ probes and Lanczos steps. Cost
    (2 + power) rank + num_probes order Hadamard matvecs of 4 n d1 d2 flops each.
  Returns:
    (estimate in nats, its standard error across probes).
  """
  zn1, zn2, mask = _normalized_pair(z1, z2, mask)
  n = zn1.shape[0]
  for name, value, low in (("power", power, 0), ("num_probes", num_probes, 2),
                           ("order", order, 1)):
    if not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low} (static under jit), got {value!r}.")
  if order >= n:
    raise ValueError(f"order must be < n = {n} samples, got {order}.")
  rank = min(64, n - order) if rank is None else rank
  if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
    raise ValueError(f"rank must be None or an int >= 1 (static under jit), got {rank!r}.")
  if rank + order > n:
    raise ValueError(f"rank + order must be <= n = {n} samples, got {rank} + {order}.")
  if rank >= zn1.shape[1] * zn2.shape[1]:
    return _joint(zn1, zn2, mask, exact=True), jnp.zeros((), zn1.dtype)
  return _joint_slq(zn1, zn2, mask, key, rank=rank, power=power, num_probes=num_probes,
                    order=order)


def joint_entropy(
    z1: jax.Array,
    z2: jax.Array,
    *,
    mask: jax.Array | None = None,
    normalized: bool = False,
    method: str = "auto",
) -> jax.Array:
  """Joint matrix entropy H(G(z1), G(z2)) = H(G(z1) o G(z2)).

  The Hadamard product is the Gram of the row-wise Kronecker features, so the
  (d1 d2) x (d1 d2) covariance route is used when d1 * d2 < n (chunked over rows at large
  n), and deflated stochastic Lanczos (:func:`joint_entropy_slq`, fixed key) when also
  d1 * d2 > SLQ_COLUMNS (unless ``method="exact"``); the route is fixed by the static
  shapes.

  Args:
    z1: (n, d1) features; z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
    normalized: divide by log(number of unmasked rows).
    method: "auto", or "exact" to never use SLQ (static; costs O(n (d1 d2)^2)).
  Returns:
    Scalar in nats, >= max(H(G(z1)), H(G(z2))).
  """
  if method not in ("auto", "exact"):
    raise ValueError(f'method must be "auto" or "exact", got {method!r}.')
  zn1, zn2, mask = _normalized_pair(z1, z2, mask)
  return _normalized_by(_joint(zn1, zn2, mask, method == "exact"), mask, normalized)


def _normalized_pair(z1, z2, mask) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Both normalised (the same object twice when ``z2 is z1``, see :func:`_joint`) and
  the (n,) mask."""
  same = z2 is z1
  (z1, z2), mask = check.feature_inputs(mask, z1=z1, z2=z2)
  zn1 = kernels.normalize_rows(z1, mask)
  return zn1, (zn1 if same else kernels.normalize_rows(z2, mask)), mask


def entropies(
    z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(H(G(z1)), H(G(z2)), H(G(z1) o G(z2))) in one pass, sharing the normalisation.

  Args:
    z1: (n, d1); z2: (n, d2); mask: optional (n,) bool.
  Returns:
    Three scalars in nats.
  """
  zn1, zn2, mask = _normalized_pair(z1, z2, mask)
  return spectral.factor_entropy(zn1), spectral.factor_entropy(zn2), _joint(zn1, zn2, mask)


def label_entropies(
    z: jax.Array, rows: jax.Array, labels: jax.Array, *, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """:func:`entropies` of features z_i and per-class rows r_{y_i} (e.g. head rows w_{y_i}),
  without the n x n Gram of the repeated rows.

  G(r_y) = E G(r) E^T (E the n x C one-hot) has the nonzero spectrum of the C x C matrix
  N^1/2 G(r) N^1/2, N the class counts among the kept samples, so H(G(r_y)) is taken
  from the smaller of C x C and d2 x d2. The joint entropy needs the samples.

  Args:
    z: (n, d1) features; rows: (C, d2) one row per class; labels: (n,) int in [0, C);
    mask: optional (n,) bool.
  Returns:
    (H(G(z)), H(G(rows[labels])), H(G(z) o G(rows[labels]))) in nats.
  """
  rows = check.features(rows, "rows", min_rows=1)
  labels = check.labels(labels, jnp.shape(z)[0], rows.shape[0])
  (z, picked), mask = check.feature_inputs(mask, z=z, **{"rows[labels]": rows[labels]})
  zn1, zn2 = kernels.normalize_rows(z, mask), kernels.normalize_rows(picked, mask)
  counts = jax.ops.segment_sum(mask.astype(zn1.dtype), labels, rows.shape[0])
  weighted = kernels.normalize_rows(rows, counts > 0) * jnp.sqrt(counts)[:, None]
  return (spectral.factor_entropy(zn1), spectral.factor_entropy(weighted),
          _joint(zn1, zn2, mask))


def mutual_information(
    z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None
) -> jax.Array:
  """Matrix mutual information I = H(G(z1)) + H(G(z2)) - H(G(z1) o G(z2)).

  Args:
    z1: (n, d1) features; z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
  Returns:
    Scalar in nats.
  """
  h1, h2, h12 = entropies(z1, z2, mask=mask)
  return h1 + h2 - h12


def mir(z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """Mutual-information ratio I(G(z1); G(z2)) / min(H(G(z1)), H(G(z2))).

  Args:
    z1: (n, d1) features; z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
  Returns:
    Scalar in [0, 1]; 1 when the two Gram matrices carry the same information.
  """
  return mir_from_entropies(*entropies(z1, z2, mask=mask))


def hdr(z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """Matrix entropy difference ratio |H(G(z1)) - H(G(z2))| / max(H(G(z1)), H(G(z2))).

  Args:
    z1: (n, d1) features; z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
  Returns:
    Scalar in [0, 1]; 0 when both Grams have the same entropy.
  """
  zn1, zn2, _ = _normalized_pair(z1, z2, mask)
  return hdr_from_entropies(spectral.factor_entropy(zn1), spectral.factor_entropy(zn2))


def _floor(h: jax.Array) -> jax.Array:
  """Entropies below sqrt(eps) are round-off of a rank-one Gram (all rows parallel)."""
  return jnp.sqrt(jnp.finfo(jnp.result_type(h, float)).eps)


def _entropy_inputs(**named) -> list[jax.Array]:
  """Entropies as float arrays of one shape; eagerly also finite and >= 0 (down to
  round-off, sqrt(eps))."""
  arrays = {k: check.real_floating(v, k) for k, v in named.items()}
  shapes = {k: v.shape for k, v in arrays.items()}
  if len(set(shapes.values())) != 1:
    raise ValueError(f"entropies must have one shape, got {shapes}.")
  for k, v in arrays.items():
    check.finite(v, k)
    low = check._reduced(lambda xp, v: xp.min(v), v) if v.size else None
    if low is not None and low < -_floor(v):
      raise ValueError(f"{k} must be >= 0 (an entropy), got {float(low):.4g}.")
  return list(arrays.values())


def mir_from_entropies(h1: jax.Array, h2: jax.Array, h12: jax.Array) -> jax.Array:
  """MIR (h1 + h2 - h12) / min(h1, h2) from the two entropies and the joint entropy.

  In [0, 1] (clipped: round-off can step outside). Defined as 0 when min(h1, h2) is
  below sqrt(eps): a rank-one Gram (e.g. the centred means of two classes) carries no
  information, and I = 0 there exactly. A NaN entropy (under jit) gives NaN.
  """
  h1, h2, h12 = _entropy_inputs(h1=h1, h2=h2, h12=h12)
  low = jnp.minimum(h1, h2)
  ok = (low > _floor(low)) | jnp.isnan(low + h12)
  return jnp.where(ok, jnp.clip((h1 + h2 - h12) / jnp.where(ok, low, 1.0), 0.0, 1.0), 0.0)


def hdr_from_entropies(h1: jax.Array, h2: jax.Array) -> jax.Array:
  """HDR |h1 - h2| / max(h1, h2) from two entropies; 0 when both are below sqrt(eps).
  A NaN entropy (under jit) gives NaN."""
  h1, h2 = _entropy_inputs(h1=h1, h2=h2)
  high = jnp.maximum(h1, h2)
  ok = (high > _floor(high)) | jnp.isnan(high)
  return jnp.where(ok, jnp.clip(jnp.abs(h1 - h2) / jnp.where(ok, high, 1.0), 0.0, 1.0), 0.0)
