"""Neural-collapse metrics: NC1-NC4 (Papyan, Han, Donoho 2020), CDNV (Galanti et al.
2022), VCI (Xu & Liu, ICML 2023) and effective rank (RankMe), plus one jittable dict of all.

Every metric takes class statistics first (:func:`ncjax.class_stats` of features, or a
:class:`ClassStats` streamed over a dataset) and keyword-only options; features enter
there, or all at once through :func:`collapse_metrics`. Classes absent from the data drop
out; C in a formula means the number of classes present.

Many classes (a vocabulary of C = 32k): no metric forms a C x C matrix beyond a block of
``tile_size`` rows (NC1's pseudo-inverse of the means is C x d); the pairwise metrics (CDNV,
NC2 angles, GNC2) take their pairs ``tile_size`` classes at a time, optionally with the
class axis split over a mesh and compensated pair Grams (docs/scale.md), and NC4 and the NCI
score their argmax over classes ``tile_size`` classes at a time (``lax.map``/``scan``,
exact: one block when C <= tile_size, the dense computation). The routes follow the
static shapes.

Pseudo-inverses of the class means (NC1, and the rank of Sigma_B in VCI) come from the
SVD of the means themselves with their known rank C - 1, less what lies within their
round-off; an eager call warns when a value cannot be trusted to 1e-3 (docs/numerics.md).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from ncjax import _conditioning as conditioning
from ncjax import _tiling, info, kernels, spectral
from ncjax import _validation as check
from ncjax._tiling import TILE
from ncjax.kernels import matmul
from ncjax.stats import ClassStats, checked, class_stats, require_distinct_means

__all__ = ["nc1", "nc2", "nc3", "nc4", "unc3", "cdnv", "gnc2", "vci", "effective_rank",
           "collapse_metrics", "collapse_metrics_from_stats", "collapse_metrics_jit",
           "collapse_metrics_from_stats_jit"]


def nc1(stats: ClassStats) -> jax.Array:
  """NC1 = tr(Sigma_W Sigma_B^+) / C, Sigma_B = sum_c M_c M_c^T / C (unweighted).

  = tr(Sigma_W (M^T M)^+) = ||Sigma_W^1/2 M^+||_F^2 with M^+ from the SVD of the centred
  means M themselves (``spectral.factor_pinv``), not of M M^T: nearly dependent means
  (C close to d) keep their small singular values, which a Gram's eigenvalues would
  round away. The support is the known rank C - 1 (centred means are dependent) less
  singular values within the means' round-off (``ClassStats.centred_means_roundoff``).
  Warns eagerly (``ncjax.ConditioningWarning``) when the estimated relative error
  exceeds 1e-3. Raises eagerly when all class means are equal (0/0); NaN under jit.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
  Returns:
    Scalar >= 0; 0 at within-class collapse.

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> round(float(nc1(stats)), 4)  # tr(I/2 Sigma_B^+) / C, Sigma_B = [[1, -1], [-1, 1]]
  0.125
  """
  s = checked(stats)
  require_distinct_means(s, "NC1")
  return _nc1(s, _MeansFactor.of(s))


@flax.struct.dataclass
class _MeansFactor:
  """The centred means' pseudo-inverse (d, C), singular values (k,) descending, their
  support (k,) and the round-off (): shared by NC1 and VCI."""
  pinv: jax.Array
  values: jax.Array
  support: jax.Array
  noise: jax.Array

  @classmethod
  def of(cls, s: ClassStats) -> _MeansFactor:
    noise = s.centred_means_roundoff
    rank = s.num_present - 1
    x, values = spectral.factor_pinv(s.scaled_centred_means, rank, noise)
    return cls(x, values, spectral.resolved(values, rank, noise), noise)

  @property
  def rank(self) -> jax.Array:
    return jnp.sum(self.support)

  def relative_error(self, s: ClassStats) -> jax.Array:
    """First-order relative error of 1 / sigma^2 on the support: 2 (entry round-off +
    the SVD's eps sigma_max) / sigma_min."""
    entry = self.noise / jnp.sqrt(s.num_present * s.dim)
    smallest = jnp.min(jnp.where(self.support, self.values, jnp.inf))
    eps = jnp.finfo(self.values.dtype).eps
    return 2 * (entry + eps * self.values[0]) / smallest

  def condition(self) -> jax.Array:
    return self.values[0] / jnp.min(jnp.where(self.support, self.values, jnp.inf))


def _nc1(s: ClassStats, means: _MeansFactor) -> jax.Array:
  x = means.pinv
  conditioning.warn_if_inaccurate(means.relative_error(s), "NC1",
                                  "centred class means nearly dependent", means.condition())
  value = jnp.sum(x * matmul(s.scaled_sigma_w, x))
  return jnp.where(means.rank > 0, value, jnp.nan)


def _mean_cosine(x: jax.Array, keep: jax.Array) -> jax.Array:
  """Mean cosine over ordered pairs i != j of kept rows in O(C d):
  sum_{i != j} u_i . u_j = ||sum_i u_i||^2 - (number of rows)."""
  total = jnp.sum(kernels.unit_rows(x, keep), axis=0)
  n = jnp.sum(keep)
  return (jnp.sum(total**2) - n) / (n * (n - 1))


def _angle_references(x: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The mean cosine of the kept rows and -1/(C-1): the references of
  :func:`_angle_terms`."""
  return _mean_cosine(x, keep), -1.0 / (jnp.sum(keep) - 1)


def _angle_terms(cos: jax.Array, mean: jax.Array, etf: jax.Array) -> dict:
  """NC2 angle terms of the pairs: squared deviation from the mean cosine, and
  |cos + 1/(C-1)| (0 for a simplex ETF)."""
  return {"cos_var": (cos - mean) ** 2, "maxangle": jnp.abs(cos - etf)}


def _mean_pairs(s: ClassStats, tile_size: int, mesh=None,
                precision=_tiling.HIGHEST) -> dict[str, jax.Array]:
  """The pairwise metrics of the centred class means in one tiled pass: ``cdnv``,
  ``equiangular_means``, ``maxangle_means``, ``gnc2`` (the options: see
  :func:`collapse_metrics_from_stats`)."""
  m = s.scaled_centred_means  # distances from centred means: no cancellation of an offset
  r, v = kernels.row_norms(m), s.scaled_class_variances

  def terms(cos, a, b, *references):
    (ri, vi), (rj, vj) = ((x[:, None] for x in a), b)
    sq = ri**2 + rj**2 - 2 * ri * rj * cos
    return _angle_terms(cos, *references) | {
        "cdnv": (vi + vj) / (2 * sq),
        "gnc2": -0.5 * jnp.log(2.0 - 2.0 * cos),  # log 1 / ||u_i - u_j||
    }

  out = _tiling.pair_means(m, s.present, terms, tile_size, mesh, rows=(r, v),
                           shared=_angle_references(m, s.present), precision=precision)
  return {"cdnv": out["cdnv"], "equiangular_means": jnp.sqrt(out["cos_var"]),
          "maxangle_means": out["maxangle"], "gnc2": out["gnc2"]}


def cdnv(stats: ClassStats, *, tile_size: int = TILE, mesh=None,
         precision=_tiling.HIGHEST) -> jax.Array:
  """Class-distance normalised variance: mean over pairs c < c' of
  (v_c + v_c') / (2 ||mu_c - mu_c'||^2), v_c the mean squared distance to mu_c.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
    tile_size: classes per block of pairs (static; memory O(tile_size C / devices)).
    mesh, precision: the class axis over a mesh and the pair Grams' precision, see
      :func:`collapse_metrics_from_stats`.
  Returns:
    Scalar >= 0 (inf when two present classes share a mean). Raises eagerly when all
    class means are equal (0/0).

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> round(float(cdnv(stats)), 4)  # (1 + 1) / (2 ||(2, 0) - (0, 2)||^2)
  0.125
  """
  s = checked(stats)
  require_distinct_means(s, "CDNV")
  return _mean_pairs(s, tile_size, *_pair_options(mesh, precision))["cdnv"]


def gnc2(stats: ClassStats, *, tile_size: int = TILE, mesh=None,
         precision=_tiling.HIGHEST) -> jax.Array:
  """Generalized NC2 (Liu et al. 2023): hyperspherical uniformity of the normalised
  centred class means u_c, the mean over pairs of the log-inverse-distance (Riesz s = 0)
  kernel log(1 / ||u_c - u_c'||).

  Lower is more uniform. For C <= d + 1 the minimum is the simplex ETF,
  -log(2 C / (C - 1)) / 2.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
    tile_size: classes per block of pairs (static).
    mesh, precision: see :func:`collapse_metrics_from_stats`.
  Returns:
    Scalar (inf when two present classes share a direction).

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> round(float(gnc2(stats)), 4)  # two classes are a simplex: -log(2 C / (C - 1)) / 2
  -0.6931
  """
  s = checked(stats)
  require_distinct_means(s, "GNC2")
  return _mean_pairs(s, tile_size, *_pair_options(mesh, precision))["gnc2"]


def vci(stats: ClassStats) -> jax.Array:
  """Variability Collapse Index 1 - tr(Sigma_T^+ Sigma_B) / rank(Sigma_B) (Xu & Liu, ICML 2023).

  Sigma_B is class-frequency weighted, so Sigma_T = Sigma_W + Sigma_B. Invariant under
  invertible linear maps of the features. rank(Sigma_B) = rank of the centred means: at
  most C - 1, less singular values within their round-off (as in :func:`nc1`, from the
  means themselves). Clamped to [0, 1]: near full collapse the float32 value is accurate
  to about eps cond(Sigma_T) absolute; an eager call warns (``ncjax.ConditioningWarning``)
  when that exceeds 1e-3. Raises eagerly when all class means are equal (rank
  Sigma_B = 0); NaN then under jit.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
  Returns:
    Scalar in [0, 1]; 0 at full variability collapse.

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> round(float(vci(stats)), 4)  # 1 - tr(Sigma_T^+ Sigma_B) / 1 = 1 - 2 / 2.5
  0.2
  """
  s = checked(stats)
  require_distinct_means(s, "VCI")
  return _vci(s, _MeansFactor.of(s))


def _vci(s: ClassStats, means: _MeansFactor,
         sigma_t: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
  mw = s.scaled_weighted_means  # Sigma_B = mw^T mw (in units of scale^2)
  lam, v = spectral.psd_eigh_core(s.scaled_sigma_t) if sigma_t is None else sigma_t
  inverse = spectral.pinv_eigenvalues(lam, max_rank=s.total - 1)
  explained = jnp.sum(jnp.sum(matmul(mw, v) ** 2, axis=0) * inverse)
  condition = lam[-1] * jnp.max(inverse)
  conditioning.warn_if_inaccurate(jnp.finfo(lam.dtype).eps * condition, "VCI",
                                  "Sigma_T nearly singular", condition)
  value = jnp.clip(1.0 - explained / jnp.maximum(means.rank, 1), 0.0, 1.0)
  return jnp.where(means.rank > 0, value, jnp.nan)


def _equinorm(x: jax.Array, keep: jax.Array) -> jax.Array:
  norms = kernels.row_norms(x)
  norms = norms / jnp.max(jnp.where(keep, norms, 0.0))  # std/mean is scale-free
  mean = jnp.sum(jnp.where(keep, norms, 0.0)) / jnp.sum(keep)
  var = jnp.sum(jnp.where(keep, (norms - mean) ** 2, 0.0)) / jnp.sum(keep)
  return jnp.sqrt(var) / mean


def nc2(stats: ClassStats, *, head: jax.Array | None = None, kernel: jax.Array | None = None,
        tile_size: int = TILE, mesh=None, precision=_tiling.HIGHEST) -> dict[str, jax.Array]:
  """NC2: equinorm (std/mean of norms), equiangularity (std of off-diagonal cosines) and
  max-angle (mean |cos + 1/(C-1)|) of the centred class means, and of the head rows.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
    head: optional (C, d) classifier weights W (rows w_c).
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
    tile_size: classes per block of pairs (static).
    mesh, precision: see :func:`collapse_metrics_from_stats`.
  Returns:
    Dict with keys ``equinorm_means, equiangular_means, maxangle_means`` (and ``_head``);
    all 0 for a simplex ETF.

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> head = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # rows along the centred means
  >>> {k: round(float(v), 4) for k, v in nc2(stats, head=head).items()}  # a simplex
  {'equinorm_means': 0.0, 'equiangular_means': 0.0, 'maxangle_means': 0.0, 'equinorm_head': 0.0, 'equiangular_head': 0.0, 'maxangle_head': 0.0}
  """
  s = checked(stats)
  require_distinct_means(s, "NC2")
  options = _pair_options(mesh, precision)
  out = {"equinorm_means": _equinorm(s.scaled_centred_means, s.present)}
  out |= {k: v for k, v in _mean_pairs(s, tile_size, *options).items() if k.endswith("_means")}
  w = check.head_or_kernel(head, kernel, s.num_classes, s.dim, required=False)
  if w is not None:
    out |= _head_angles(w, s.present, tile_size, *options)
  return out


def _pair_options(mesh, precision) -> tuple:
  """The checked ``mesh`` and ``precision`` of the pairwise metrics."""
  return _tiling.check_mesh(mesh), _tiling.pair_precision(precision)


def _head_angles(head: jax.Array, present: jax.Array, tile_size: int, mesh=None,
                 precision=_tiling.HIGHEST) -> dict:
  check.rows_nonzero(head, present, "head")  # a zero row has no angle
  angles = _tiling.pair_means(head, present, lambda cos, a, b, *ref: _angle_terms(cos, *ref),
                              tile_size, mesh, shared=_angle_references(head, present),
                              precision=precision)
  return {"equinorm_head": _equinorm(head, present),
          "equiangular_head": jnp.sqrt(angles["cos_var"]), "maxangle_head": angles["maxangle"]}


def nc3(stats: ClassStats, *, head: jax.Array | None = None,
        kernel: jax.Array | None = None) -> jax.Array:
  """NC3 self-duality || W/||W||_F - M/||M||_F ||_F^2 over the classes present.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
    head: (C, d) classifier weights.
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
  Returns:
    Scalar in [0, 4]; 0 when W is a positive multiple of M. Raises eagerly when all
    class means are equal (M = 0) or the head rows of the classes present are all zero
    (W = 0): both are 0/0, NaN under jit.

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> head = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # rows along the centred means
  >>> round(float(nc3(stats, head=head)), 4)  # head rows along the centred means
  0.0
  """
  s = checked(stats)
  require_distinct_means(s, "NC3")
  w = check.head_or_kernel(head, kernel, s.num_classes, s.dim, required=True)
  check.not_all_zero(w, s.present, "head", "NC3 is 0/0 (W = 0 over the classes present)")
  w = jnp.where(s.present[:, None], w, 0.0)
  unit = lambda a: a / kernels.frobenius_norm(a)
  return jnp.sum((unit(w) - unit(s.scaled_centred_means)) ** 2)


def unc3(stats: ClassStats, *, head: jax.Array | None = None,
         kernel: jax.Array | None = None) -> jax.Array:
  """Uniform duality (UNC3, Wu & Papyan 2024): the spread (standard deviation over the
  classes present) of cos(w_c, M_c), the cosine between each head row and its centred
  class mean.

  Args:
    stats: ClassStats of the features (:func:`ncjax.class_stats`).
    head: (C, d) classifier weights.
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
  Returns:
    Scalar in [0, 1]; 0 when every head row makes the same angle with its class mean
    (e.g. W a positive multiple of M). Raises eagerly when all class means are equal.

  >>> import jax.numpy as jnp
  >>> stats = class_stats(jnp.eye(3), jnp.arange(3), num_classes=3)  # cos(e_c, M_c) = 0.8165
  >>> round(float(unc3(stats, head=jnp.eye(3))), 4)  # every row at the same angle
  0.0
  >>> round(float(unc3(stats, head=jnp.diag(jnp.array([1.0, 1.0, -1.0])))), 4)  # one flipped
  0.7698
  """
  s = checked(stats)
  require_distinct_means(s, "UNC3")
  w = check.head_or_kernel(head, kernel, s.num_classes, s.dim, required=True)
  check.rows_nonzero(w, s.present, "head")
  cos = jnp.sum(kernels.unit_rows(w, s.present)
                * kernels.unit_rows(s.scaled_centred_means, s.present), axis=1)
  n = s.num_present
  mean = jnp.sum(cos) / n
  return jnp.sqrt(jnp.sum(jnp.where(s.present, (cos - mean) ** 2, 0.0)) / n)


def nc4(
    stats: ClassStats,
    features: jax.Array,
    *,
    head: jax.Array | None = None,
    kernel: jax.Array | None = None,
    bias: jax.Array | None = None,
    logits: jax.Array | None = None,
    mask: jax.Array | None = None,
    tile_size: int = TILE,
) -> jax.Array:
  """NC4: fraction of samples where argmax(W h + b) differs from the nearest class mean.

  Needs the class means of the whole dataset (``stats``), so over a dataset it is a
  second pass over the features. The network's predictions come from ``head`` (and
  ``bias``), or from ``logits`` a forward pass already computed (one n x C x d product
  fewer).

  Args:
    stats: ClassStats giving the class means (e.g. of the train set).
    features: (n, d) features h to classify.
    head: (C, d) classifier weights W; or None with ``logits``.
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
    bias: optional (C,) with ``head``, zero if None.
    logits: (n, C) the network's outputs W h + b on these features, instead of ``head``.
    mask: optional (n,) bool; False rows are ignored.
    tile_size: classes per block (static; memory O(n tile_size)).
  Returns:
    Scalar in [0, 1].

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> head = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # rows along the centred means
  >>> float(nc4(stats, h, head=head)), float(nc4(stats, h, logits=h @ head.T))
  (0.0, 0.0)
  """
  stats = checked(stats, minimum=1)
  features, head, bias, logits, mask = check.classifier_inputs(
      features, mask, stats.num_classes, stats.dim, head_=head, bias_=bias, logits_=logits,
      head_required=False, kernel_=kernel)
  check.enough_rows(mask, minimum=1)
  network = _tiling.predicted_classes(features, head, bias, logits, tile_size)
  # ||h - mu_c||^2 = ||(h - mu_G) - M_c||^2 in units of scale: no offset cancellation.
  m = stats.scaled_centred_means
  x = (features - stats.shift) / stats.scale - stats.scaled_global_mean
  norms = jnp.where(stats.present, jnp.sum(m**2, axis=1), jnp.inf)
  (nearest,) = _tiling.argmax_over_classes(
      lambda classes: (2 * matmul(x, m[classes].T) - norms[classes],), stats.num_classes,
      tile_size, features.shape[0])
  return jnp.sum((network != nearest) & mask) / jnp.sum(mask)


def effective_rank(features: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """RankMe effective rank exp(H(p)), p = singular values of the features / their sum.

  No epsilon is added: singular values within the SVD's error are 0 and contribute
  exactly 0 (RankMe's p + 1e-7 changes the value by less than d * 2e-6). The singular
  values come from the moments about the mean (:func:`_effective_rank`), so an offset
  of 1e5 in float32 does not round the small ones away.

  Args:
    features: (n, d) raw (uncentred) features; mask: optional (n,) bool.
  Returns:
    Scalar in [1, min(n, d)].

  >>> import jax.numpy as jnp
  >>> round(float(effective_rank(jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))), 4)  # singular values sqrt(3), 1
  1.9286
  """
  (z,), mask = check.feature_inputs(mask, features=features)
  return _effective_rank(ClassStats._from_batch(z, jnp.zeros(z.shape[0], jnp.int32), 1, mask))


def _effective_rank(stats: ClassStats) -> jax.Array:
  """RankMe of the features behind ``stats`` (scale-free) from a factor of
  Z^T Z / scale^2 = sum_c (W_c + n_c a_c a_c^T), a_c = mu_c / scale: the rows
  sqrt(n_c) a_c over a square root of the pooled within scatter W. No second pass over
  Z and no squared singular values: the SVD of the (C + d, d) factor resolves what an
  eigensolver of the sum (or an SVD of Z at an offset) would round away."""
  a = stats.scaled_means + stats.shift / stats.scale
  lam, vectors = spectral.psd_eigh_core(stats.scaled_within)
  lam = jnp.where(spectral.kept(lam), lam, 0.0)  # solver noise, whose roots would count
  within_root = jnp.sqrt(lam)[:, None] * vectors.T
  factor = jnp.concatenate([jnp.sqrt(stats.counts)[:, None] * a, within_root])
  sigma = spectral.singular_values(factor)
  zero = sigma <= max(factor.shape) ** 0.5 * jnp.finfo(sigma.dtype).eps * sigma[0]
  return jnp.exp(spectral.spectrum_entropy_core(jnp.where(zero, 0.0, sigma)))


def collapse_metrics_from_stats(
    stats: ClassStats, *, head: jax.Array | None = None, kernel: jax.Array | None = None,
    tile_size: int = TILE, joint_entropy: bool = True, mesh=None, precision=_tiling.HIGHEST,
    sigma_t: tuple[jax.Array, jax.Array] | None = None,
) -> dict[str, jax.Array]:
  """All metrics computable from class statistics (everything but NC4), each spectrum
  and each tiled pass over the class pairs computed once.

  Args:
    stats: ClassStats of the features.
    head: optional (C, d) classifier weights.
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
    tile_size: classes per block of the pairwise metrics (static).
    joint_entropy: with a head, also ``mi`` and ``mir``, which need the joint entropy of
      the two C x C cosine Grams: an O(C^3) eigenproblem (and C x C memory) whatever the
      route, out of reach at vocabulary scale (C = 32k); set False there. A Python bool
      (static under jit: :data:`collapse_metrics_from_stats_jit`).
    mesh: optional ``jax.sharding.Mesh`` (``ncjax.sharding.sample_mesh()``): the class
      axis of the pairwise metrics (CDNV, NC2 angles, GNC2) is split over its P devices,
      each holding C / P class means and head rows and passing them round a ring; no
      device forms a C x C or C x d array there. The statistics may be replicated (e.g.
      ``class_stats(..., mesh=mesh)``) or their class axis sharded over the mesh
      (``ncjax.sharding.shard_classes``); the other metrics read them whole.
    precision: of the pair Gram products (static): ``jax.lax.Precision.HIGHEST`` (exact
      float32, the default) or a ``jax.lax.DotAlgorithmPreset`` such as
      ``BF16_BF16_F32_X3`` / ``TF32_TF32_F32_X3`` (3 tensor-core passes; within 1e-5 of
      HIGHEST, docs/scale.md); one the backend refuses falls back to HIGHEST with a
      warning (XLA:CPU refuses TF32 and runs the BF16 presets in float32).
    sigma_t: optional ``spectral.psd_eigh_core(stats.scaled_sigma_t)`` ((d,), (d, d)),
      when already known: Sigma_T does not depend on the labels, so statistics of the
      same features with permuted labels share one (:mod:`ncjax.baselines`).
  Returns:
    Dict with keys ``nc1, cdnv, vci, effective_rank, equinorm_means, equiangular_means,
    maxangle_means, gnc2, entropy_means``; with a head also ``nc3, unc3``, the head NC2
    terms and ``entropy_head, hdr`` (and ``mi, mir``) between head rows and centred means.

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # 2 classes, 2 each
  >>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
  >>> head = jnp.array([[1.0, -1.0], [-1.0, 1.0]])  # rows along the centred means
  >>> m = collapse_metrics_from_stats(stats, head=head)
  >>> round(float(m["nc1"]), 4), round(float(m["nc3"]), 4)
  (0.125, 0.0)
  """
  stats = checked(stats)
  require_distinct_means(stats, "collapse_metrics")
  joint_entropy = check.static_bool(joint_entropy, "joint_entropy")
  head = check.head_or_kernel(head, kernel, stats.num_classes, stats.dim, required=False)
  options = _pair_options(mesh, precision)
  pairs = _mean_pairs(stats, tile_size, *options)
  means = _MeansFactor.of(stats)
  out = {"nc1": _nc1(stats, means), "vci": _vci(stats, means, sigma_t), "cdnv": pairs["cdnv"],
         "gnc2": pairs["gnc2"]}
  out["effective_rank"] = _effective_rank(stats)
  m, present = stats.scaled_centred_means, stats.present
  out |= {"equinorm_means": _equinorm(m, present),
          "equiangular_means": pairs["equiangular_means"],
          "maxangle_means": pairs["maxangle_means"]}
  if head is None:
    out["entropy_means"] = info.matrix_entropy(m, mask=present)
    return out
  out |= _head_angles(head, present, tile_size, *options)
  out |= {"nc3": nc3(stats, head=head), "unc3": unc3(stats, head=head)}
  sizes = (min(stats.num_classes, stats.dim),) * 2
  if not joint_entropy:
    h_head, h_means = info.matrix_entropy(head, mask=present), info.matrix_entropy(m, mask=present)
    info.warn_ratio_roundoff(h_head, h_means, sizes=sizes)
    return out | {"entropy_head": h_head, "entropy_means": h_means,
                  "hdr": info.hdr_from_entropies(h_head, h_means)}
  h_head, h_means, h_joint = info.entropies(head, m, mask=present)
  info.warn_ratio_roundoff(h_head, h_means, h_joint,
                           sizes=(*sizes, min(stats.num_classes, stats.dim**2)))
  info.warn_ratio_roundoff(h_head, h_means, sizes=sizes)
  return out | {
      "entropy_head": h_head,
      "entropy_means": h_means,
      "mi": h_head + h_means - h_joint,
      "mir": info.mir_from_entropies(h_head, h_means, h_joint),
      "hdr": info.hdr_from_entropies(h_head, h_means),
  }


def collapse_metrics(
    features: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    head: jax.Array | None = None,
    kernel: jax.Array | None = None,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    tile_size: int = TILE,
    joint_entropy: bool = True,
    precision=_tiling.HIGHEST,
) -> dict[str, jax.Array]:
  """Every collapse and information metric of one set of features, in one jittable call.

  Jitted: :data:`collapse_metrics_jit` (its static options declared static), or
  ``jax.jit(collapse_metrics, static_argnames=("num_classes", "tile_size",
  "joint_entropy", "precision"))``. Eagerly, labels outside [0, num_classes) raise in the rows the
  mask keeps (masked rows' labels may be anything, e.g. -1); under jit such rows are
  dropped like masked ones, and ``checkify.checkify(fn, errors=checkify.index_checks)``
  reports them.

  Args:
    features: (n, d) features.
    labels: (n,) int in [0, num_classes).
    num_classes: static C.
    head: optional (C, d) classifier weights.
    kernel: the same weights in Flax's ``nn.Dense`` layout (d, C), instead of ``head``.
    bias: optional (C,) classifier bias (needs a head).
    mask: optional (n,) bool; False rows are ignored.
    tile_size, joint_entropy, precision: see :func:`collapse_metrics_from_stats`.
  Returns:
    :func:`collapse_metrics_from_stats` plus, with a head, ``nc4``.

  >>> import jax.numpy as jnp
  >>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
  >>> m = collapse_metrics(h, jnp.array([0, 0, 1, 1]), num_classes=2,
  ...                      head=jnp.array([[1.0, -1.0], [-1.0, 1.0]]))
  >>> round(float(m["nc1"]), 4), round(float(m["vci"]), 4), float(m["nc4"])
  (0.125, 0.2, 0.0)
  """
  features = check.features(features, "features", min_rows=2)
  stats = class_stats(features, labels, num_classes=num_classes, mask=mask)
  head = check.head_or_kernel(head, kernel, num_classes, features.shape[1], required=False)
  if bias is not None and head is None:
    raise ValueError("bias needs a head (or kernel).")
  out = collapse_metrics_from_stats(stats, head=head, tile_size=tile_size,
                                    joint_entropy=joint_entropy, precision=precision)
  if head is not None:  # on the rows the statistics kept (see kept_labels)
    _, kept = check.kept_labels(jnp.asarray(labels), check.as_mask(mask, features.shape[0]),
                                num_classes)
    out["nc4"] = nc4(stats, features, head=head, bias=bias, mask=kept, tile_size=tile_size)
  return out


collapse_metrics_jit = jax.jit(
    collapse_metrics, static_argnames=("num_classes", "tile_size", "joint_entropy", "precision"))
collapse_metrics_jit.__doc__ = """:func:`collapse_metrics` under ``jax.jit``, its static
options (``num_classes``, ``tile_size``, ``joint_entropy``, ``precision``) declared static:
one compiled program per shape and options. Only shape and dtype errors raise (at trace time); value
checks (NaN, zero rows, label range) are eager only (see :func:`collapse_metrics`).

>>> import jax.numpy as jnp
>>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
>>> m = collapse_metrics_jit(h, jnp.array([0, 0, 1, 1]), num_classes=2,
...                          head=jnp.array([[1.0, -1.0], [-1.0, 1.0]]), joint_entropy=False)
>>> round(float(m["nc1"]), 4), "mir" in m
(0.125, False)
"""

collapse_metrics_from_stats_jit = jax.jit(
    collapse_metrics_from_stats,
    static_argnames=("tile_size", "joint_entropy", "mesh", "precision"))
collapse_metrics_from_stats_jit.__doc__ = """:func:`collapse_metrics_from_stats` under
``jax.jit``, its static options (``tile_size``, ``joint_entropy``, ``mesh``, ``precision``) declared
static. Value checks are eager only, as for :data:`collapse_metrics_jit`.

>>> import jax.numpy as jnp
>>> h = jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
>>> stats = class_stats(h, jnp.array([0, 0, 1, 1]), num_classes=2)
>>> m = collapse_metrics_from_stats_jit(stats, kernel=jnp.array([[1.0, -1.0], [-1.0, 1.0]]),
...                                     joint_entropy=False)
>>> round(float(m["nc3"]), 4)
0.0
"""
