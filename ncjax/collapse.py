"""Neural-collapse metrics: NC1-NC4 (Papyan, Han, Donoho 2020), CDNV (Galanti et al.
2022), VCI (Liu & Xu 2023) and effective rank (RankMe), plus one jittable dict of all.

Metrics of the class statistics take either a :class:`ClassStats` (e.g. streamed over a
dataset) or ``features, labels, num_classes=...``. Classes absent from the data drop
out; C in a formula means the number of classes present. Pseudo-inverses and ranks
keep eigenvalues above ``size * eps * max`` (``ncjax.spectral.kept``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ncjax import _validation as check
from ncjax import info, kernels, spectral
from ncjax.kernels import matmul
from ncjax.stats import ClassStats


def class_stats(
    features: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    mask: jax.Array | None = None,
) -> ClassStats:
  """Class statistics of one set of features: :meth:`ClassStats.from_batch`.

  Args:
    features: (n, d) float; labels: (n,) int in [0, num_classes);
    num_classes: static C; mask: optional (n,) bool, False rows ignored.
  """
  return ClassStats.from_batch(features, labels, num_classes=num_classes, mask=mask)


def _stats(x, labels, num_classes, mask) -> ClassStats:
  if isinstance(x, ClassStats):
    if labels is not None or mask is not None:
      raise ValueError("labels and mask go with features, not with a ClassStats.")
  else:
    if labels is None or num_classes is None:
      raise ValueError("pass a ClassStats, or features with labels and num_classes.")
    x = class_stats(x, labels, num_classes=num_classes, mask=mask)
  check.classes_present(x.counts)
  return x


def nc1(x, labels=None, *, num_classes: int | None = None, mask=None) -> jax.Array:
  """NC1 = tr(Sigma_W Sigma_B^+) / C, Sigma_B = sum_c M_c M_c^T / C (unweighted).

  Computed in the C x C space: tr(Sigma_W (M^T M)^+) = tr(L^+ M Sigma_W M^T L^+) with
  L = M M^T, so only a C x C eigendecomposition is needed. The pseudo-inverse keeps at
  most C - 1 eigenvalues (centred means are linearly dependent; ``spectral.kept``).

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
  Returns:
    Scalar >= 0; 0 at within-class collapse.
  """
  s = _stats(x, labels, num_classes, mask)
  m = s.scaled_centred_means
  lam, u = spectral.psd_eigh(matmul(m, m.T))
  a = matmul(matmul(m, s.scaled_sigma_w), m.T)
  inverse = spectral.pinv_eigenvalues(lam, max_rank=s.num_present - 1)
  return jnp.sum(jnp.einsum("ci,cd,di->i", u, a, u) * inverse**2)


def _present_pairs(present: jax.Array, upper: bool) -> jax.Array:
  pairs = present[:, None] & present[None, :]
  c = present.shape[0]
  return pairs & (jnp.triu(jnp.ones((c, c), bool), 1) if upper else ~jnp.eye(c, dtype=bool))


def _require_distinct_means(s: ClassStats, metric: str) -> None:
  """Eagerly raises when every present class mean equals the global mean (e.g. constant
  features), where ``metric`` is 0/0; under jit it is NaN then."""
  m = s.scaled_centred_means
  if check.is_concrete(m) and not np.any(np.asarray(m)[np.asarray(s.present)]):
    raise ValueError(f"{metric} is 0/0: all class means are equal.")


def cdnv(x, labels=None, *, num_classes: int | None = None, mask=None) -> jax.Array:
  """Class-distance normalised variance: mean over pairs c < c' of
  (v_c + v_c') / (2 ||mu_c - mu_c'||^2), v_c the mean squared distance to mu_c.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
  Returns:
    Scalar >= 0 (inf when two present classes share a mean). Raises eagerly when all
    class means are equal (0/0).
  """
  s = _stats(x, labels, num_classes, mask)
  _require_distinct_means(s, "CDNV")
  m = s.scaled_centred_means  # distances from centred means: no cancellation of an offset
  g = matmul(m, m.T)
  sq = jnp.diag(g)[:, None] + jnp.diag(g)[None, :] - 2 * g
  v = s.scaled_class_variances
  pairs = _present_pairs(s.present, upper=True)
  ratio = (v[:, None] + v[None, :]) / (2 * jnp.where(pairs, sq, 1.0))
  return jnp.sum(jnp.where(pairs, ratio, 0.0)) / jnp.sum(pairs)


def vci(x, labels=None, *, num_classes: int | None = None, mask=None) -> jax.Array:
  """Variability Collapse Index 1 - tr(Sigma_T^+ Sigma_B) / rank(Sigma_B) (Liu & Xu 2023).

  Sigma_B is class-frequency weighted, so Sigma_T = Sigma_W + Sigma_B. Invariant under
  invertible linear maps of the features. rank(Sigma_B) <= C - 1 is judged against
  ||Sigma_T|| (``spectral.kept``). Clamped to [0, 1]: near full collapse the float32
  value is accurate to about d eps absolute (round-off can otherwise give -1e-7). Raises
  eagerly when all class means are equal (rank Sigma_B = 0); NaN then under jit.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
  Returns:
    Scalar in [0, 1]; 0 at full variability collapse.
  """
  s = _stats(x, labels, num_classes, mask)
  mw = s.scaled_weighted_means  # Sigma_B = mw^T mw (in units of scale^2)
  lam, v = spectral.psd_eigh(s.scaled_sigma_t)
  inverse = spectral.pinv_eigenvalues(lam, max_rank=s.total - 1)
  explained = jnp.sum(jnp.sum(matmul(mw, v) ** 2, axis=0) * inverse)
  rtol = spectral.default_rtol(lam.shape[-1], lam.dtype)
  rank_b = jnp.sum(spectral.kept(spectral.psd_eigvalsh(matmul(mw, mw.T)), rtol, scale=lam[-1],
                                 max_rank=s.num_present - 1))
  if check.is_concrete(rank_b) and int(np.asarray(rank_b)) == 0:
    raise ValueError("VCI is 0/0: all class means are equal (rank Sigma_B = 0).")
  value = jnp.clip(1.0 - explained / jnp.maximum(rank_b, 1), 0.0, 1.0)
  return jnp.where(rank_b > 0, value, jnp.nan)


def _equinorm(x: jax.Array, keep: jax.Array) -> jax.Array:
  norms = kernels.row_norms(x)
  norms = norms / jnp.max(jnp.where(keep, norms, 0.0))  # std/mean is scale-free
  mean = jnp.sum(jnp.where(keep, norms, 0.0)) / jnp.sum(keep)
  var = jnp.sum(jnp.where(keep, (norms - mean) ** 2, 0.0)) / jnp.sum(keep)
  return jnp.sqrt(var) / mean


def _angles(x: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
  xn = kernels.normalize_rows(x, keep)
  cos = matmul(xn, xn.T)
  off = _present_pairs(keep, upper=False)
  count = jnp.sum(off)
  mean = jnp.sum(jnp.where(off, cos, 0.0)) / count
  std = jnp.sqrt(jnp.sum(jnp.where(off, (cos - mean) ** 2, 0.0)) / count)
  max_angle = jnp.sum(jnp.where(off, jnp.abs(cos + 1.0 / (jnp.sum(keep) - 1)), 0.0)) / count
  return std, max_angle


def nc2(
    x, labels=None, *, num_classes: int | None = None, mask=None, head: jax.Array | None = None
) -> dict[str, jax.Array]:
  """NC2: equinorm (std/mean of norms), equiangularity (std of off-diagonal cosines) and
  max-angle (mean |cos + 1/(C-1)|) of the centred class means, and of the head rows.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
    head: optional (C, d) classifier weights W (rows w_c).
  Returns:
    Dict with keys ``equinorm_means, equiangular_means, maxangle_means`` (and ``_head``);
    all 0 for a simplex ETF.
  """
  s = _stats(x, labels, num_classes, mask)
  head = None if head is None else check.head(head, s.num_classes, s.dim)
  out = {}
  for name, rows in (("means", s.scaled_centred_means), ("head", head)):
    if rows is not None:
      out[f"equinorm_{name}"] = _equinorm(rows, s.present)
      out[f"equiangular_{name}"], out[f"maxangle_{name}"] = _angles(rows, s.present)
  return out


def nc3(x, head: jax.Array, labels=None, *, num_classes: int | None = None, mask=None):
  """NC3 self-duality || W/||W||_F - M/||M||_F ||_F^2 over the classes present.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
    head: (C, d) classifier weights.
  Returns:
    Scalar in [0, 4]; 0 when W is a positive multiple of M. Raises eagerly when all
    class means are equal (M = 0).
  """
  s = _stats(x, labels, num_classes, mask)
  _require_distinct_means(s, "NC3")
  w = jnp.where(s.present[:, None], check.head(head, s.num_classes, s.dim), 0.0)
  unit = lambda a: a / kernels.frobenius_norm(a)
  return jnp.sum((unit(w) - unit(s.scaled_centred_means)) ** 2)


def nc4(
    features: jax.Array,
    stats: ClassStats,
    head: jax.Array,
    bias: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
) -> jax.Array:
  """NC4: fraction of samples where argmax(W h + b) differs from the nearest class mean.

  Args:
    features: (n, d); stats: ClassStats giving the class means (e.g. of the train set);
    head: (C, d); bias: optional (C,), zero if None; mask: optional (n,) bool.
  Returns:
    Scalar in [0, 1].
  """
  if not isinstance(stats, ClassStats):
    raise check.InputTypeError(f"stats must be a ClassStats, got {type(stats).__name__}.")
  features = check.features(features, "features", min_rows=1)
  n, d = features.shape
  if d != stats.dim:
    raise ValueError(f"features must have {stats.dim} columns like stats, got shape {(n, d)}.")
  head = check.head(head, stats.num_classes, d)
  bias = check.bias(bias, stats.num_classes, features.dtype)
  mask = check.as_mask(mask, n)
  check.finite(features, "features", mask)
  check.classes_present(stats.counts, minimum=1)
  network = jnp.argmax(matmul(features, head.T) + bias, axis=1)
  # ||h - mu_c||^2 = ||(h - mu_G) - M_c||^2 in units of scale: no offset cancellation.
  m = stats.scaled_centred_means
  x = (features - stats.shift) / stats.scale - stats.scaled_global_mean
  dist = jnp.sum(m**2, axis=1) - 2 * matmul(x, m.T)
  nearest = jnp.argmin(jnp.where(stats.present, dist, jnp.inf), axis=1)
  return jnp.sum((network != nearest) & mask) / jnp.sum(mask)


def effective_rank(features: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
  """RankMe effective rank exp(H(p)), p = singular values of the features / their sum.

  No epsilon is added: zero singular values contribute exactly 0 (RankMe's
  p + 1e-7 changes the value by less than d * 2e-6).

  Args:
    features: (n, d) raw (uncentred) features; mask: optional (n,) bool.
  Returns:
    Scalar in [1, min(n, d)].
  """
  (z,), mask = check.feature_inputs(mask, features=features)
  z = jnp.where(mask[:, None], z, 0.0)
  z = z / jax.lax.stop_gradient(jnp.max(jnp.abs(z)))  # scale-free: 1e30 does not overflow
  return _effective_rank(matmul(z.T, z))


def _effective_rank(second_moment: jax.Array) -> jax.Array:
  """RankMe from the (d, d) uncentred second moment Z^T Z (singular values = sqrt)."""
  lam = spectral.psd_eigvalsh(second_moment)
  positive = lam > 0
  sigma = jnp.where(positive, jnp.sqrt(jnp.where(positive, lam, 1.0)), 0.0)
  return jnp.exp(spectral.spectrum_entropy(sigma))


def collapse_metrics_from_stats(
    stats: ClassStats, head: jax.Array | None = None
) -> dict[str, jax.Array]:
  """All metrics computable from class statistics (everything but NC4).

  Returns:
    Dict with keys ``nc1, cdnv, vci, effective_rank, equinorm_means, equiangular_means,
    maxangle_means, entropy_means``; with a head also ``nc3``, the head NC2 terms and
    ``entropy_head, mi, mir, hdr`` between head rows and centred means.
  """
  if not isinstance(stats, ClassStats):
    raise check.InputTypeError(f"stats must be a ClassStats, got {type(stats).__name__}.")
  check.classes_present(stats.counts)
  out = {"nc1": nc1(stats), "cdnv": cdnv(stats), "vci": vci(stats)}
  # Z^T Z / scale^2 from the class statistics: sum_c (W_c + n_c a_c a_c^T) with
  # a_c = mu_c / scale; no second pass over Z (effective rank is scale-invariant).
  a = stats.scaled_means + stats.shift / stats.scale
  out["effective_rank"] = _effective_rank(
      stats.scaled_within + matmul((a * stats.counts[:, None]).T, a))
  out |= nc2(stats, head=head)
  m, present = stats.scaled_centred_means, stats.present
  if head is None:
    out["entropy_means"] = info.matrix_entropy(m, mask=present)
    return out
  out["nc3"] = nc3(stats, head)
  h_head, h_means, h_joint = info.entropies(head, m, mask=present)
  out |= {
      "entropy_head": h_head,
      "entropy_means": h_means,
      "mi": h_head + h_means - h_joint,
      "mir": info.mir_from_entropies(h_head, h_means, h_joint),
      "hdr": info.hdr_from_entropies(h_head, h_means),
  }
  return out


def collapse_metrics(
    features: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    head: jax.Array | None = None,
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> dict[str, jax.Array]:
  """Every collapse and information metric of one set of features, in one jittable call.

  Jit with ``jax.jit(collapse_metrics, static_argnames="num_classes")``.

  Args:
    features: (n, d); labels: (n,) int; num_classes: static C;
    head: optional (C, d); bias: optional (C,); mask: optional (n,) bool.
  Returns:
    :func:`collapse_metrics_from_stats` plus, with a head, ``nc4``.
  """
  stats = class_stats(features, labels, num_classes=num_classes, mask=mask)
  if bias is not None and head is None:
    raise ValueError("bias needs a head.")
  out = collapse_metrics_from_stats(stats, head)
  if head is not None:
    out["nc4"] = nc4(features, stats, head, bias, mask=mask)
  return out
