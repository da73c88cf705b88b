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
import numpy as np

from ncjax import _conditioning as conditioning
from ncjax import _tiling, kernels, spectral
from ncjax import _validation as check
from ncjax.kernels import matmul

__all__ = ["gram_entropy", "matrix_entropy", "joint_entropy", "joint_entropy_slq",
           "entropies", "label_entropies", "mutual_information", "mir", "hdr",
           "mir_from_entropies", "hdr_from_entropies"]


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

  >>> import jax.numpy as jnp
  >>> round(float(gram_entropy(jnp.eye(3))), 4), round(float(gram_entropy(jnp.ones((3, 3)))), 4)
  (1.0986, 0.0)
  """
  k = check.features(k, "k")
  if k.shape[0] != k.shape[1]:
    raise ValueError(f"k must be square (n, n), got shape {k.shape}.")
  mask = check.as_mask(mask, k.shape[0])
  check.finite(k, "k", mask)
  check.enough_rows(mask)
  check.psd(k, mask, "k")
  keep = mask[:, None] & mask[None, :]
  return _normalized_by(spectral.psd_entropy_core(jnp.where(keep, k, 0.0)), mask, normalized)


def _entropy_of_rows(zn: jax.Array, mesh) -> jax.Array:
  """H(G) of normalised rows (zero where masked): the cheaper of the n x n Gram and the
  d x d moment, or with a mesh the moment psum'd over the devices' rows."""
  if mesh is None:
    return spectral.factor_entropy(zn)
  return spectral.psd_entropy_core(_tiling.reduce_rows(kernels.gram, mesh, zn))


def matrix_entropy(
    z: jax.Array, *, mask: jax.Array | None = None, normalized: bool = False, mesh=None,
) -> jax.Array:
  """Matrix entropy H(G(z)) of the cosine Gram of features.

  Uses the d x d covariance ``Zn^T Zn`` when d < n (same nonzero spectrum as the
  n x n Gram), else the Gram itself; the route is fixed by the static shapes.

  Args:
    z: (n, d) features, n >= 2, no all-zero unmasked rows.
    mask: optional (n,) bool; False marks padded rows.
    normalized: divide by log(number of unmasked rows), giving a value in [0, 1].
    mesh: optional sample mesh (``ncjax.sharding.sample_mesh()``) over which the rows
      are sharded (``ncjax.sharding.shard_rows``): each device reduces its rows to a
      d x d covariance, summed with one psum.
  Returns:
    Scalar in [0, log n]; log n for orthonormal rows, 0 when all rows are parallel.

  >>> import jax.numpy as jnp
  >>> round(float(matrix_entropy(jnp.eye(4))), 4)  # orthonormal rows: log 4
  1.3863
  >>> round(float(matrix_entropy(jnp.ones((3, 2)), normalized=True)), 4)  # parallel rows
  0.0
  """
  (z,), mask = check.feature_inputs(mask, z=z)
  h = _entropy_of_rows(kernels.unit_rows(z, mask), _tiling.check_mesh(mesh))
  return _normalized_by(h, mask, normalized)


KRON_ELEMENTS = 1 << 24  # default chunk of the Kronecker moment: chunk * d1 d2 elements
METHODS = ("auto", "gram", "kronecker")


def _joint_options(method: str, chunk_size, mesh):
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r} (the stochastic "
                     "estimate is joint_entropy_slq, which returns its standard error).")
  if chunk_size is not None:
    check.static_int(chunk_size, "chunk_size")
  mesh = _tiling.check_mesh(mesh)
  if mesh is not None and method == "gram":
    raise ValueError('method="gram" forms the n x n Gram: it does not shard over a mesh; use '
                     '"kronecker" (or "auto").')
  return mesh


def _joint(zn1, zn2, method="auto", chunk_size=None, mesh=None) -> jax.Array:
  """Entropy of G1 o G2 from normalised rows (zero where masked); symmetric Kronecker
  features when ``zn2 is zn1``.

  "gram": the n x n Hadamard product of the Grams. "kronecker": the (d1 d2) x (d1 d2)
  moment of the row-wise Kronecker features, accumulated over chunks of ``chunk_size``
  rows (default: KRON_ELEMENTS elements per chunk; with a mesh, per device and psum'd).
  "auto": "gram" when d1 d2 >= n (and no mesh), else "kronecker".
  """
  n, d1 = zn1.shape
  d2 = zn2.shape[1]
  if method == "gram" or (method == "auto" and d1 * d2 >= n and mesh is None):
    gram = lambda zn: matmul(zn, zn.T)
    return spectral.psd_entropy_core(gram(zn1) * gram(zn2))
  rows = n if mesh is None else n // mesh.size
  chunk = chunk_size or max(1, min(rows, KRON_ELEMENTS // (d1 * d2)))
  if mesh is not None:
    pair = (zn1,) if zn2 is zn1 else (zn1, zn2)
    moment = lambda *p: kernels.hadamard_moment(p[0], p[-1], chunk)  # p[-1] is p[0]: symmetric
    return spectral.psd_entropy_core(_tiling.reduce_rows(moment, mesh, *pair))
  if chunk >= n and zn2 is not zn1:
    return spectral.factor_entropy(kernels.khatri_rao(zn1, zn2))
  return spectral.psd_entropy_core(kernels.hadamard_moment(zn1, zn2, chunk))


def _joint_slq(zn1, zn2, mask, key, **options) -> tuple[jax.Array, jax.Array]:
  """H = log t - tr(K log K) / t for K = G1 o G2, t = tr K = rows kept."""
  t = jnp.sum(mask).astype(zn1.dtype)
  trace, stderr = spectral.slq_trace_xlogx(kernels.hadamard_matvec(zn1, zn2), zn1.shape[0],
                                           t, key, dtype=zn1.dtype, **options)
  return jnp.log(t) - trace / t, stderr / t


def joint_entropy_slq(
    z1: jax.Array, z2: jax.Array, *, key: jax.Array, mask: jax.Array | None = None,
    rank: int | None = None, power: int = 1, num_probes: int = 10, order: int = 10,
) -> tuple[jax.Array, jax.Array]:
  """Joint entropy H(G(z1) o G(z2)) by deflated stochastic Lanczos quadrature (matfree),
  for n and d1 d2 too large for the exact routes; only Hadamard matvecs, O(n (d1 + d2))
  memory. See :func:`ncjax.spectral.slq_trace_xlogx` for the estimator and its error.

  The kernel has rank <= d1 d2: when the deflation would hold all of it (``rank`` >=
  d1 d2), there is nothing left to estimate and the exact Kronecker route is taken
  (standard error 0).

  Args:
    z1: (n, d1) features.
    z2: (n, d2) features of the same n samples.
    key: PRNG key of the sketch and the probes.
    mask: optional (n,) bool; False marks padded rows.
    rank: deflated top-spectrum size (None: min(64, n - order)).
    power: subspace iterations on the sketch.
    num_probes: SLQ probes (>= 2, for the standard error).
    order: Lanczos steps per probe. Cost (2 + power) rank + num_probes order Hadamard
      matvecs of 4 n d1 d2 flops each.
  Returns:
    (estimate in nats, its standard error across probes).

  >>> import jax, jax.numpy as jnp
  >>> z = jax.random.normal(jax.random.key(1), (64, 4))
  >>> h, stderr = joint_entropy_slq(z, z**2, key=jax.random.key(0), rank=16)
  >>> bool(abs(h - joint_entropy(z, z**2)) < 4 * stderr + 1e-3)
  True
  """
  zn1, zn2, mask = _normalized_pair(z1, z2, mask)
  n = zn1.shape[0]
  for name, value, low in (("power", power, 0), ("num_probes", num_probes, 2),
                           ("order", order, 1)):
    check.static_int(value, name, low)
  if order >= n:
    raise ValueError(f"order must be < n = {n} samples, got {order}.")
  rank = min(64, n - order) if rank is None else check.static_int(rank, "rank")
  if rank + order > n:
    raise ValueError(f"rank + order must be <= n = {n} samples, got {rank} + {order}.")
  if rank >= zn1.shape[1] * zn2.shape[1]:
    return _joint(zn1, zn2, "kronecker"), jnp.zeros((), zn1.dtype)
  return _joint_slq(zn1, zn2, mask, key, rank=rank, power=power, num_probes=num_probes,
                    order=order)


def joint_entropy(
    z1: jax.Array,
    z2: jax.Array,
    *,
    mask: jax.Array | None = None,
    normalized: bool = False,
    method: str = "auto",
    chunk_size: int | None = None,
    mesh=None,
) -> jax.Array:
  """Joint matrix entropy H(G(z1), G(z2)) = H(G(z1) o G(z2)), exactly.

  The Hadamard product is the Gram of the row-wise Kronecker features, so when d1 d2 < n
  its spectrum comes from their (d1 d2) x (d1 d2) moment, accumulated over row chunks;
  memory O(chunk d1 d2 + (d1 d2)^2) whatever n is. Past d1 d2 of a few thousand the
  stochastic :func:`joint_entropy_slq` is cheaper; it is never chosen here.

  Args:
    z1: (n, d1) features.
    z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
    normalized: divide by log(number of unmasked rows).
    method: static route, "auto" ("gram" when d1 d2 >= n, else "kronecker"), "gram" (the
      n x n Hadamard product, O(n^3)) or "kronecker" (the moment, O(n (d1 d2)^2)).
    chunk_size: rows per chunk of the Kronecker moment (static; default: chunks of 2^24
      elements).
    mesh: optional sample mesh over which the rows are sharded: each device accumulates
      its rows' Kronecker moment, summed with one psum.
  Returns:
    Scalar in nats, >= max(H(G(z1)), H(G(z2))).

  >>> import jax.numpy as jnp
  >>> z = jnp.eye(4)
  >>> round(float(joint_entropy(z, jnp.ones((4, 2)))), 4)  # G o 1 = G: log 4
  1.3863
  """
  mesh = _joint_options(method, chunk_size, mesh)
  zn1, zn2, mask = _normalized_pair(z1, z2, mask)
  return _normalized_by(_joint(zn1, zn2, method, chunk_size, mesh), mask, normalized)


def _normalized_pair(z1, z2, mask) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Both normalised (the same object twice when ``z2 is z1``, see :func:`_joint`) and
  the (n,) mask."""
  same = z2 is z1
  (z1, z2), mask = check.feature_inputs(mask, z1=z1, z2=z2)
  zn1 = kernels.unit_rows(z1, mask)
  return zn1, (zn1 if same else kernels.unit_rows(z2, mask)), mask


def entropies(
    z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None, method: str = "auto",
    chunk_size: int | None = None, mesh=None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(H(G(z1)), H(G(z2)), H(G(z1) o G(z2))) in one pass, sharing the normalisation.

  Args:
    z1: (n, d1) features.
    z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
    method, chunk_size, mesh: the joint entropy's route, see :func:`joint_entropy`.
  Returns:
    Three scalars in nats.

  >>> import jax.numpy as jnp
  >>> [round(float(h), 4) for h in entropies(jnp.eye(4), jnp.eye(4))]
  [1.3863, 1.3863, 1.3863]
  """
  mesh = _joint_options(method, chunk_size, mesh)
  zn1, zn2, mask = _normalized_pair(z1, z2, mask)
  return (_entropy_of_rows(zn1, mesh), _entropy_of_rows(zn2, mesh),
          _joint(zn1, zn2, method, chunk_size, mesh))


def label_entropies(
    z: jax.Array, rows: jax.Array, labels: jax.Array, *, mask: jax.Array | None = None,
    method: str = "auto", chunk_size: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """:func:`entropies` of features z_i and per-class rows r_{y_i} (e.g. head rows w_{y_i}),
  without the n x n Gram of the repeated rows.

  G(r_y) = E G(r) E^T (E the n x C one-hot) has the nonzero spectrum of the C x C matrix
  N^1/2 G(r) N^1/2, N the class counts among the kept samples, so H(G(r_y)) is taken
  from the smaller of C x C and d2 x d2. The joint entropy needs the samples.

  Args:
    z: (n, d1) features.
    rows: (C, d2) one row per class.
    labels: (n,) int in [0, C).
    mask: optional (n,) bool; False marks padded rows.
    method, chunk_size: the joint entropy's route, see :func:`joint_entropy`.
  Returns:
    (H(G(z)), H(G(rows[labels])), H(G(z) o G(rows[labels]))) in nats.

  >>> import jax.numpy as jnp
  >>> h = label_entropies(jnp.eye(4), jnp.eye(2), jnp.array([0, 0, 1, 1]))
  >>> [round(float(x), 4) for x in h]  # log 4, log 2, log 4
  [1.3863, 0.6931, 1.3863]
  """
  _joint_options(method, chunk_size, None)
  rows = check.features(rows, "rows", min_rows=1)
  z = check.features(z, "z")
  mask = check.as_mask(mask, z.shape[0])
  labels = check.labels(labels, z.shape[0], rows.shape[0], mask=mask)
  labels, kept = check.kept_labels(labels, mask, rows.shape[0])
  (z, picked), mask = check.feature_inputs(mask, z=z, **{"rows[labels]": rows[labels]})
  mask &= kept
  zn1, zn2 = kernels.unit_rows(z, mask), kernels.unit_rows(picked, mask)
  counts = jax.ops.segment_sum(mask.astype(zn1.dtype), labels, rows.shape[0])
  weighted = kernels.unit_rows(rows, counts > 0) * jnp.sqrt(counts)[:, None]
  return (spectral.factor_entropy(zn1), spectral.factor_entropy(weighted),
          _joint(zn1, zn2, method, chunk_size))


def mutual_information(
    z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None, method: str = "auto",
    chunk_size: int | None = None, mesh=None,
) -> jax.Array:
  """Matrix mutual information I = H(G(z1)) + H(G(z2)) - H(G(z1) o G(z2)).

  Args:
    z1: (n, d1) features.
    z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
    method, chunk_size, mesh: the joint entropy's route, see :func:`joint_entropy`.
  Returns:
    Scalar in nats.

  >>> import jax.numpy as jnp
  >>> round(float(mutual_information(jnp.eye(4), jnp.eye(4))), 4)  # I(G; G) = H(G)
  1.3863
  """
  h1, h2, h12 = entropies(z1, z2, mask=mask, method=method, chunk_size=chunk_size, mesh=mesh)
  return h1 + h2 - h12


def mir(
    z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None, method: str = "auto",
    chunk_size: int | None = None, mesh=None,
) -> jax.Array:
  """Mutual-information ratio I(G(z1); G(z2)) / min(H(G(z1)), H(G(z2))).

  Args:
    z1: (n, d1) features.
    z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
    method, chunk_size, mesh: the joint entropy's route, see :func:`joint_entropy`.
  Returns:
    Scalar in [0, 1]; 1 when the two Gram matrices carry the same information.

  >>> import jax.numpy as jnp
  >>> round(float(mir(jnp.eye(4), 2.0 * jnp.eye(4))), 4)
  1.0
  """
  h1, h2, h12 = entropies(z1, z2, mask=mask, method=method, chunk_size=chunk_size, mesh=mesh)
  warn_ratio_roundoff(h1, h2, h12, sizes=_spectrum_sizes(z1, z2))
  return mir_from_entropies(h1, h2, h12)


def hdr(z1: jax.Array, z2: jax.Array, *, mask: jax.Array | None = None, mesh=None) -> jax.Array:
  """Matrix entropy difference ratio |H(G(z1)) - H(G(z2))| / max(H(G(z1)), H(G(z2))).

  Args:
    z1: (n, d1) features.
    z2: (n, d2) features of the same n samples.
    mask: optional (n,) bool; False marks padded rows.
    mesh: optional sample mesh over which the rows are sharded.
  Returns:
    Scalar in [0, 1]; 0 when both Grams have the same entropy.

  >>> import jax.numpy as jnp
  >>> z2 = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  >>> round(float(hdr(jnp.eye(4), z2)), 4)  # 1 - log 2 / log 4
  0.5
  """
  mesh = _tiling.check_mesh(mesh)
  zn1, zn2, _ = _normalized_pair(z1, z2, mask)
  h1, h2 = _entropy_of_rows(zn1, mesh), _entropy_of_rows(zn2, mesh)
  warn_ratio_roundoff(h1, h2, sizes=_spectrum_sizes(z1, z2)[:2])
  return hdr_from_entropies(h1, h2)


def _spectrum_sizes(z1: jax.Array, z2: jax.Array) -> tuple[int, int, int]:
  """Eigenvalues behind H(G(z1)), H(G(z2)) and H(G(z1) o G(z2)) (validated shapes)."""
  (n, d1), d2 = jnp.shape(z1), jnp.shape(z2)[1]
  return min(n, d1), min(n, d2), min(n, d1 * d2)


def warn_ratio_roundoff(h1: jax.Array, h2: jax.Array, h12: jax.Array | None = None, *,
                        sizes: tuple[int, ...]) -> None:
  """Eagerly warns (``ncjax.ConditioningWarning``) when MIR (with ``h12``) or HDR
  (without) of these entropies may be off by more than 1e-3: each entropy carries
  about ``size * eps`` nats of round-off (``_conditioning.entropy_roundoff``), and the
  ratios divide their sum by min(h1, h2) (MIR) or max(h1, h2) (HDR), so an entropy near
  0 (features with a large common offset) amplifies it.

  Args:
    h1, h2: () entropies; h12: () joint entropy, for MIR; sizes: the spectrum size of each.
  """
  dtype = jnp.result_type(h1)
  error = sum(conditioning.entropy_roundoff(k, dtype) for k in sizes)
  if h12 is None:
    denominator, what = jnp.maximum(h1, h2), "HDR"
  else:
    denominator, what = jnp.minimum(h1, h2), "MIR"
  counted = denominator > _FLOOR  # below it the ratio is defined as 0
  conditioning.warn_if_inaccurate(jnp.where(counted, error / denominator, 0.0), what,
                                  f"an entropy of {what}'s denominator is near 0 nats")


# Entropies below sqrt(float32 eps) nats are round-off of a rank-one Gram (all rows
# parallel); one threshold for every dtype, so MIR and HDR mean the same in float64.
_FLOOR = float(np.sqrt(np.finfo(np.float32).eps))


def _entropy_inputs(**named) -> list[jax.Array]:
  """Entropies as float arrays of one shape; eagerly also finite and >= 0 (down to
  round-off, sqrt(float32 eps))."""
  arrays = {k: check.real_floating(v, k) for k, v in named.items()}
  shapes = {k: v.shape for k, v in arrays.items()}
  if len(set(shapes.values())) != 1:
    raise ValueError(f"entropies must have one shape, got {shapes}.")
  for k, v in arrays.items():
    check.finite(v, k)
    low = check.reduced(lambda xp, v: xp.min(v), v) if v.size else None
    if low is not None and low < -_FLOOR:
      raise ValueError(f"{k} must be >= 0 (an entropy), got {float(low):.4g}.")
  return list(arrays.values())


def mir_from_entropies(h1: jax.Array, h2: jax.Array, h12: jax.Array) -> jax.Array:
  """MIR (h1 + h2 - h12) / min(h1, h2) from the two entropies and the joint entropy.

  In [0, 1] (clipped: round-off can step outside). Defined as 0 when min(h1, h2) is
  below sqrt(float32 eps) = 3.5e-4 nats: a rank-one Gram (e.g. the centred means of two
  classes) carries no information, and I = 0 there exactly. A NaN entropy (under jit) gives NaN.

  >>> round(float(mir_from_entropies(1.0, 2.0, 2.5)), 4)  # I = 0.5 over min 1.0
  0.5
  """
  h1, h2, h12 = _entropy_inputs(h1=h1, h2=h2, h12=h12)
  low = jnp.minimum(h1, h2)
  ok = (low > _FLOOR) | jnp.isnan(low + h12)
  return jnp.where(ok, jnp.clip((h1 + h2 - h12) / jnp.where(ok, low, 1.0), 0.0, 1.0), 0.0)


def hdr_from_entropies(h1: jax.Array, h2: jax.Array) -> jax.Array:
  """HDR |h1 - h2| / max(h1, h2) from two entropies; 0 when both are below sqrt(float32
  eps). A NaN entropy (under jit) gives NaN.

  >>> round(float(hdr_from_entropies(1.0, 4.0)), 4)
  0.75
  """
  h1, h2 = _entropy_inputs(h1=h1, h2=h2)
  high = jnp.maximum(h1, h2)
  ok = (high > _FLOOR) | jnp.isnan(high)
  return jnp.where(ok, jnp.clip(jnp.abs(h1 - h2) / jnp.where(ok, high, 1.0), 0.0, 1.0), 0.0)
