"""Neural-collapse metrics: NC1-NC4 (Papyan, Han, Donoho 2020), CDNV (Galanti et al.
2022), VCI (Liu & Xu 2023) and effective rank (RankMe), plus one jittable dict of all.

Metrics of the class statistics take either a :class:`ClassStats` (e.g. streamed over a
dataset) or ``features, labels, num_classes=...``. Classes absent from the data drop
out; C in a formula means the number of classes present. Pseudo-inverses and ranks
keep eigenvalues above ``size * eps * max`` (``ncjax.spectral.kept``).

Many classes (a vocabulary of C = 32k): no metric forms a C x C matrix beyond a block of
``tile_size`` rows. NC1 works in the d x d space when C > d; the pairwise metrics (CDNV,
NC2 angles, GNC2) take their pairs ``tile_size`` classes at a time, and NC4 and the NCI
score their argmax over classes ``tile_size`` classes at a time (``lax.map``/``scan``,
exact: one block when C <= tile_size, the dense computation). The routes follow the
static shapes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ncjax import _validation as check
from ncjax import info, kernels, sharding, spectral
from ncjax.kernels import matmul
from ncjax.stats import ClassStats

TILE = 1024  # default tile_size: classes per block of a pairwise or argmax computation


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
    # Static: two samples of two classes at least (raises at trace time under jit too).
    x = check.features(x, "features", min_rows=2)
    if check.num_classes(num_classes) < 2:
      raise ValueError(f"collapse metrics compare classes: num_classes must be >= 2, got "
                       f"{num_classes}.")
    x = class_stats(x, labels, num_classes=num_classes, mask=mask)
  check.classes_present(x.counts)
  return x


def nc1(x, labels=None, *, num_classes: int | None = None, mask=None) -> jax.Array:
  """NC1 = tr(Sigma_W Sigma_B^+) / C, Sigma_B = sum_c M_c M_c^T / C (unweighted).

  = tr(Sigma_W (M^T M)^+). When C <= d it is computed in the C x C space,
  tr(L^+ M Sigma_W M^T L^+) with L = M M^T; when C > d in the d x d space,
  sum_i v_i^T Sigma_W v_i / lambda_i over the eigenpairs of M^T M. The pseudo-inverse
  keeps at most C - 1 eigenvalues (centred means are linearly dependent; ``spectral.kept``).

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
  Returns:
    Scalar >= 0; 0 at within-class collapse.
  """
  s = _stats(x, labels, num_classes, mask)
  m = s.scaled_centred_means
  if s.num_classes > s.dim:
    lam, v = spectral.psd_eigh(matmul(m.T, m))
    inverse = spectral.pinv_eigenvalues(lam, max_rank=s.num_present - 1)
    return jnp.sum(jnp.einsum("di,de,ei->i", v, s.scaled_sigma_w, v) * inverse)
  lam, u = spectral.psd_eigh(matmul(m, m.T))
  a = matmul(matmul(m, s.scaled_sigma_w), m.T)
  inverse = spectral.pinv_eigenvalues(lam, max_rank=s.num_present - 1)
  return jnp.sum(jnp.einsum("ci,cd,di->i", u, a, u) * inverse**2)


def _tile_size(tile_size) -> int:
  if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 1:
    raise ValueError(f"tile_size must be an int >= 1 (static under jit), got {tile_size!r}.")
  return int(tile_size)


def _pair_means(x: jax.Array, keep: jax.Array, terms, tile_size: int, mesh=None) -> dict:
  """Means over the ordered pairs (i, j), i != j, of kept rows of the (t, C) arrays
  ``terms(cos, rows)``: ``cos`` holds the cosines between rows ``rows`` (t,) of x and
  every row. Row blocks of t = min(tile_size, C) rows one at a time (``lax.map``; with a
  mesh, the blocks split across its devices): at most a (t, C) block exists per device.
  Each pair counts twice, so means over i < j are the same.
  """
  c = x.shape[0]
  u = kernels.normalize_rows(x, keep)
  t = min(_tile_size(tile_size), c)
  devices = 1 if mesh is None else mesh.size
  tiles = -(-c // t)
  blocks = -(-tiles // devices) * devices  # whole blocks per device, padded past c
  index = jnp.arange(blocks * t).reshape(-1, t)

  def block(index):
    rows = jnp.minimum(index, c - 1)
    pair = ((index < c) & keep[rows])[:, None] & keep[None, :] & (
        rows[:, None] != jnp.arange(c)[None, :])
    cos = jnp.where(pair, matmul(u[rows], u.T), 0.0)  # no inf off the pairs (diagonal)
    values = terms(cos, rows)
    return {k: jnp.sum(jnp.sum(jnp.where(pair, v, 0.0), axis=1)) for k, v in values.items()}

  sums = sharding.sum_over_blocks(block, index, mesh)
  n = jnp.sum(keep)
  return {k: v / (n * (n - 1)) for k, v in sums.items()}


def _mean_cosine(x: jax.Array, keep: jax.Array) -> jax.Array:
  """Mean cosine over ordered pairs i != j of kept rows in O(C d):
  sum_{i != j} u_i . u_j = ||sum_i u_i||^2 - (number of rows)."""
  total = jnp.sum(kernels.normalize_rows(x, keep), axis=0)
  n = jnp.sum(keep)
  return (jnp.sum(total**2) - n) / (n * (n - 1))


def _angle_terms(x: jax.Array, keep: jax.Array):
  """NC2 angle terms of the pairs: squared deviation from the mean cosine, and
  |cos + 1/(C-1)| (0 for a simplex ETF)."""
  mean, etf = _mean_cosine(x, keep), -1.0 / (jnp.sum(keep) - 1)
  return lambda cos, rows: {"cos_var": (cos - mean) ** 2, "maxangle": jnp.abs(cos - etf)}


def _mean_pairs(s: ClassStats, tile_size: int, mesh=None) -> dict[str, jax.Array]:
  """The pairwise metrics of the centred class means in one tiled pass: ``cdnv``,
  ``equiangular_means``, ``maxangle_means``, ``gnc2``."""
  m = s.scaled_centred_means  # distances from centred means: no cancellation of an offset
  r, v = kernels.row_norms(m), s.scaled_class_variances
  angles = _angle_terms(m, s.present)

  def terms(cos, rows):
    ri = r[rows][:, None]
    sq = ri**2 + r[None, :] ** 2 - 2 * ri * r[None, :] * cos
    return angles(cos, rows) | {
        "cdnv": (v[rows][:, None] + v[None, :]) / (2 * sq),
        "gnc2": -0.5 * jnp.log(2.0 - 2.0 * cos),  # log 1 / ||u_i - u_j||
    }

  out = _pair_means(m, s.present, terms, tile_size, mesh)
  return {"cdnv": out["cdnv"], "equiangular_means": jnp.sqrt(out["cos_var"]),
          "maxangle_means": out["maxangle"], "gnc2": out["gnc2"]}


def _require_distinct_means(s: ClassStats, metric: str) -> None:
  """Eagerly raises when every present class mean equals the global mean (e.g. constant
  features), where ``metric`` is 0/0; under jit it is NaN then."""
  m = s.scaled_centred_means
  if check.is_concrete(m) and not np.any(check.host(m)[check.host(s.present)]):
    raise ValueError(f"{metric} is 0/0: all class means are equal.")


def cdnv(x, labels=None, *, num_classes: int | None = None, mask=None,
         tile_size: int = TILE) -> jax.Array:
  """Class-distance normalised variance: mean over pairs c < c' of
  (v_c + v_c') / (2 ||mu_c - mu_c'||^2), v_c the mean squared distance to mu_c.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
    tile_size: classes per block of pairs (static; memory O(tile_size C)).
  Returns:
    Scalar >= 0 (inf when two present classes share a mean). Raises eagerly when all
    class means are equal (0/0).
  """
  s = _stats(x, labels, num_classes, mask)
  _require_distinct_means(s, "CDNV")
  return _mean_pairs(s, tile_size)["cdnv"]


def gnc2(x, labels=None, *, num_classes: int | None = None, mask=None,
         tile_size: int = TILE) -> jax.Array:
  """Generalized NC2 (Liu et al. 2023): hyperspherical uniformity of the normalised
  centred class means u_c, the mean over pairs of the log-inverse-distance (Riesz s = 0)
  kernel log(1 / ||u_c - u_c'||).

  Lower is more uniform. For C <= d + 1 the minimum is the simplex ETF,
  -log(2 C / (C - 1)) / 2.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
    tile_size: classes per block of pairs (static).
  Returns:
    Scalar (inf when two present classes share a direction).
  """
  s = _stats(x, labels, num_classes, mask)
  _require_distinct_means(s, "GNC2")
  return _mean_pairs(s, tile_size)["gnc2"]


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
  rank_b = jnp.sum(spectral.kept(spectral.factor_eigvalsh(mw), rtol, scale=lam[-1],
                                 max_rank=s.num_present - 1))
  if check.is_concrete(rank_b) and int(check.host(rank_b)) == 0:
    raise ValueError("VCI is 0/0: all class means are equal (rank Sigma_B = 0).")
  value = jnp.clip(1.0 - explained / jnp.maximum(rank_b, 1), 0.0, 1.0)
  return jnp.where(rank_b > 0, value, jnp.nan)


def _equinorm(x: jax.Array, keep: jax.Array) -> jax.Array:
  norms = kernels.row_norms(x)
  norms = norms / jnp.max(jnp.where(keep, norms, 0.0))  # std/mean is scale-free
  mean = jnp.sum(jnp.where(keep, norms, 0.0)) / jnp.sum(keep)
  var = jnp.sum(jnp.where(keep, (norms - mean) ** 2, 0.0)) / jnp.sum(keep)
  return jnp.sqrt(var) / mean


def nc2(
    x, labels=None, *, num_classes: int | None = None, mask=None, head: jax.Array | None = None,
    tile_size: int = TILE,
) -> dict[str, jax.Array]:
  """NC2: equinorm (std/mean of norms), equiangularity (std of off-diagonal cosines) and
  max-angle (mean |cos + 1/(C-1)|) of the centred class means, and of the head rows.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
    head: optional (C, d) classifier weights W (rows w_c).
    tile_size: classes per block of pairs (static).
  Returns:
    Dict with keys ``equinorm_means, equiangular_means, maxangle_means`` (and ``_head``);
    all 0 for a simplex ETF.
  """
  s = _stats(x, labels, num_classes, mask)
  _require_distinct_means(s, "NC2")
  out = {"equinorm_means": _equinorm(s.scaled_centred_means, s.present)}
  out |= {k: v for k, v in _mean_pairs(s, tile_size).items() if k.endswith("_means")}
  if head is not None:
    out |= _head_angles(check.head(head, s.num_classes, s.dim), s.present, tile_size)
  return out


def _head_angles(head: jax.Array, present: jax.Array, tile_size: int, mesh=None) -> dict:
  check.rows_nonzero(head, present, "head")  # a zero row has no angle
  angles = _pair_means(head, present, _angle_terms(head, present), tile_size, mesh)
  return {"equinorm_head": _equinorm(head, present),
          "equiangular_head": jnp.sqrt(angles["cos_var"]), "maxangle_head": angles["maxangle"]}


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


def unc3(x, head: jax.Array, labels=None, *, num_classes: int | None = None, mask=None):
  """Uniform duality (UNC3, Wu & Papyan 2024): the spread (standard deviation over the
  classes present) of cos(w_c, M_c), the cosine between each head row and its centred
  class mean.

  Args:
    x: ClassStats, or (n, d) features with (n,) labels and num_classes.
    head: (C, d) classifier weights.
  Returns:
    Scalar in [0, 1]; 0 when every head row makes the same angle with its class mean
    (e.g. W a positive multiple of M). Raises eagerly when all class means are equal.
  """
  s = _stats(x, labels, num_classes, mask)
  _require_distinct_means(s, "UNC3")
  w = check.head(head, s.num_classes, s.dim)
  check.rows_nonzero(w, s.present, "head")
  cos = jnp.sum(kernels.normalize_rows(w, s.present)
                * kernels.normalize_rows(s.scaled_centred_means, s.present), axis=1)
  n = s.num_present
  mean = jnp.sum(cos) / n
  return jnp.sqrt(jnp.sum(jnp.where(s.present, (cos - mean) ** 2, 0.0)) / n)


def _argmax_tiled(scores, num_classes: int, tile_size: int, n: int) -> jax.Array:
  """(n,) argmax over classes of ``scores(classes) -> (n, t)`` (k arrays), taken
  t = min(tile_size, C) classes at a time (``lax.scan``): at most (n, t) scores exist.
  Ties go to the lowest class index, as ``jnp.argmax``. Returns a tuple of k (n,) arrays.
  """
  t = min(_tile_size(tile_size), num_classes)
  index = jnp.arange(-(-num_classes // t) * t).reshape(-1, t)

  def step(best, index):
    valid = index < num_classes
    values = scores(jnp.minimum(index, num_classes - 1))
    new = []
    for (value, arg), block in zip(best, values):
      block = jnp.where(valid, block, -jnp.inf)
      top = jnp.max(block, axis=1)
      better = top > value
      new.append((jnp.where(better, top, value),
                  jnp.where(better, index[jnp.argmax(block, axis=1)], arg)))
    return tuple(new), None

  start = tuple((jnp.full((n,), -jnp.inf, block.dtype), jnp.zeros((n,), jnp.int32))
                for block in jax.eval_shape(scores, index[0]))
  best, _ = jax.lax.scan(step, start, index)
  return tuple(arg for _, arg in best)


def _network_and_nearest(features, stats: ClassStats, head, bias, tile_size: int):
  """(n,) argmax of W h + b and (n,) nearest present class mean, over class tiles."""
  # ||h - mu_c||^2 = ||(h - mu_G) - M_c||^2 in units of scale: no offset cancellation.
  m = stats.scaled_centred_means
  x = (features - stats.shift) / stats.scale - stats.scaled_global_mean
  norms = jnp.where(stats.present, jnp.sum(m**2, axis=1), jnp.inf)

  def scores(classes):
    logits = matmul(features, head[classes].T) + bias[classes]
    return logits, 2 * matmul(x, m[classes].T) - norms[classes]

  return _argmax_tiled(scores, stats.num_classes, tile_size, features.shape[0])


def _head_inputs(features, stats, head, bias, mask):
  """Validated (features, head, bias, mask) of the functions that classify samples."""
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
  return features, head, bias, mask


def nc4(
    features: jax.Array,
    stats: ClassStats,
    head: jax.Array,
    bias: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    tile_size: int = TILE,
) -> jax.Array:
  """NC4: fraction of samples where argmax(W h + b) differs from the nearest class mean.

  Needs the class means of the whole dataset (``stats``), so over a dataset it is a
  second pass over the features.

  Args:
    features: (n, d); stats: ClassStats giving the class means (e.g. of the train set);
    head: (C, d); bias: optional (C,), zero if None; mask: optional (n,) bool;
    tile_size: classes per block (static; memory O(n tile_size)).
  Returns:
    Scalar in [0, 1].
  """
  features, head, bias, mask = _head_inputs(features, stats, head, bias, mask)
  check.enough_rows(mask, minimum=1)
  network, nearest = _network_and_nearest(features, stats, head, bias, tile_size)
  return jnp.sum((network != nearest) & mask) / jnp.sum(mask)


def nci_score(
    features: jax.Array,
    stats: ClassStats,
    head: jax.Array,
    bias: jax.Array | None = None,
    *,
    alpha: float = 0.0,
    tile_size: int = TILE,
) -> jax.Array:
  """Per-sample out-of-distribution score of NCI (Liu & Qin 2023, as in pytorch-ood):
  -(w_c . z) / ||z|| - alpha ||h||_1, z = h - mu_G the feature centred at the
  in-distribution global mean, c = argmax(W h + b) the predicted class. Higher means more
  likely out of distribution: an in-distribution feature lies along its class's head row.

  Args:
    features: (n, d) features h (in- or out-of-distribution); stats: ClassStats of the
    in-distribution (training) features; head: (C, d); bias: optional (C,);
    alpha: weight of the L1 feature-norm term; tile_size: classes per argmax block.
  Returns:
    (n,) scores.
  """
  features, head, bias, _ = _head_inputs(features, stats, head, bias, None)
  if check.is_concrete(alpha) and not np.isfinite(alpha):
    raise ValueError(f"alpha must be finite, got {alpha}.")
  n = features.shape[0]
  (predicted,) = _argmax_tiled(
      lambda classes: (matmul(features, head[classes].T) + bias[classes],),
      stats.num_classes, tile_size, n)
  relative = (features - stats.shift) / stats.scale
  z = relative - stats.scaled_global_mean
  at_mean = _within_roundoff(z, relative, stats.scaled_global_mean[None], stats)
  if at_mean is not None and at_mean.any():
    raise ValueError(f"nci_score is 0/0 for features rows {np.flatnonzero(at_mean)[:10].tolist()}"
                     ": they equal the in-distribution global mean (to round-off).")
  z = kernels.normalize_rows(z)
  return -jnp.sum(head[predicted] * z, axis=1) - alpha * jnp.sum(jnp.abs(features), axis=1)


def _within_roundoff(diff, a, b, stats: ClassStats) -> np.ndarray | None:
  """Eagerly, (...,) bool: rows of ``diff = a - b`` (..., d), points in ``stats``' frame,
  no larger than the rounding error of the points in the features' own units
  (4 sqrt(d) eps (|shift| / scale + |a| + |b|)): a direction made of round-off.
  None under tracing."""
  if not check.is_concrete(diff, a, b, stats.shift):
    return None
  diff, a, b = (np.asarray(check.host(x), np.float64) for x in (diff, a, b))
  norm = lambda x: np.linalg.norm(x, axis=-1)
  offset = norm(np.asarray(check.host(stats.shift), np.float64)) / float(stats.scale)
  tol = 4 * np.sqrt(diff.shape[-1]) * np.finfo(np.float32).eps * (offset + norm(a) + norm(b))
  return norm(diff) <= tol


def nc5(stats: ClassStats, ood, *, mask: jax.Array | None = None) -> jax.Array:
  """NC5, ID/OOD orthogonality (Ammar et al. 2024, NECO): mean over the classes present
  of |cos(M_c, mu_OOD - mu_G)|, M_c the centred in-distribution class means and mu_OOD
  the mean of out-of-distribution features; both are centred at the in-distribution
  global mean mu_G, so a common offset changes nothing.

  Over a large OOD set, accumulate ``ClassStats`` of the OOD features (one class, say)
  in the same pass that scores them with :func:`nci_score`, and pass those.

  Args:
    stats: ClassStats of the in-distribution features.
    ood: (n, d) OOD features, or a ClassStats of them (its global mean is used).
    mask: optional (n,) bool for OOD features.
  Returns:
    Scalar in [0, 1]; 0 when the OOD mean is orthogonal to every class mean. Raises
    eagerly when the OOD mean equals the ID global mean (0/0); NaN then under jit.
  """
  if not isinstance(stats, ClassStats):
    raise check.InputTypeError(f"stats must be a ClassStats, got {type(stats).__name__}.")
  check.classes_present(stats.counts)
  _require_distinct_means(stats, "NC5")
  # g = (mu_OOD - mu_G) / scale, measured from the ID reference point: no offset cancels.
  if isinstance(ood, ClassStats):
    if mask is not None:
      raise ValueError("mask goes with OOD features, not with a ClassStats.")
    if ood.dim != stats.dim:
      raise ValueError(f"ood features are {ood.dim}-d, stats {stats.dim}-d.")
    check.classes_present(ood.counts, minimum=1)
    g = ((ood.shift - stats.shift) / stats.scale
         + ood.scaled_global_mean * (ood.scale / stats.scale))
  else:
    ood = check.features(ood, "ood", min_rows=1)
    if ood.shape[1] != stats.dim:
      raise ValueError(f"ood features are {ood.shape[1]}-d, stats {stats.dim}-d.")
    mask = check.as_mask(mask, ood.shape[0])
    check.enough_rows(mask, minimum=1)
    check.finite(ood, "ood", mask)
    x = jnp.where(mask[:, None], (ood - stats.shift) / stats.scale, 0.0)
    g = jnp.sum(x / jnp.sum(mask), axis=0)  # divided first: no overflow
  at_mean = _within_roundoff(g - stats.scaled_global_mean, g, stats.scaled_global_mean, stats)
  if at_mean is not None and at_mean:
    raise ValueError("NC5 is 0/0: the OOD mean equals the in-distribution global mean "
                     "(to round-off).")
  g = g - stats.scaled_global_mean
  g = kernels.normalize_rows(g[None, :])[0]
  cos = matmul(kernels.normalize_rows(stats.scaled_centred_means, stats.present), g)
  return jnp.sum(jnp.where(stats.present, jnp.abs(cos), 0.0)) / stats.num_present


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
  lam, vectors = jnp.linalg.eigh(stats.scaled_within)
  lam = jnp.where(spectral.kept(lam), lam, 0.0)  # solver noise, whose roots would count
  within_root = jnp.sqrt(lam)[:, None] * vectors.T
  factor = jnp.concatenate([jnp.sqrt(stats.counts)[:, None] * a, within_root])
  sigma = jnp.linalg.svd(factor, compute_uv=False)
  zero = sigma <= max(factor.shape) ** 0.5 * jnp.finfo(sigma.dtype).eps * sigma[0]
  return jnp.exp(spectral.spectrum_entropy(jnp.where(zero, 0.0, sigma)))


def collapse_metrics_from_stats(
    stats: ClassStats, head: jax.Array | None = None, *, tile_size: int = TILE,
    joint_entropy: bool = True, mesh=None,
) -> dict[str, jax.Array]:
  """All metrics computable from class statistics (everything but NC4), each spectrum
  and each tiled pass over the class pairs computed once.

  Args:
    stats: ClassStats; head: optional (C, d) classifier weights;
    tile_size: classes per block of the pairwise metrics (static);
    joint_entropy: with a head, also ``mi`` and ``mir``, which need the joint entropy of
      the two C x C cosine Grams: an O(C^3) eigenproblem (and C x C memory) whatever the
      route, out of reach at vocabulary scale (C = 32k); set False there.
    mesh: optional ``jax.sharding.Mesh`` (``ncjax.sharding.sample_mesh()``): the tiles
      of class pairs are split across its devices (the statistics stay replicated).
  Returns:
    Dict with keys ``nc1, cdnv, vci, effective_rank, equinorm_means, equiangular_means,
    maxangle_means, gnc2, entropy_means``; with a head also ``nc3, unc3``, the head NC2
    terms and ``entropy_head, hdr`` (and ``mi, mir``) between head rows and centred means.
  """
  if not isinstance(stats, ClassStats):
    raise check.InputTypeError(f"stats must be a ClassStats, got {type(stats).__name__}.")
  check.classes_present(stats.counts)
  _require_distinct_means(stats, "collapse_metrics")
  pairs = _mean_pairs(stats, tile_size, mesh)
  out = {"nc1": nc1(stats), "vci": vci(stats), "cdnv": pairs["cdnv"], "gnc2": pairs["gnc2"]}
  out["effective_rank"] = _effective_rank(stats)
  m, present = stats.scaled_centred_means, stats.present
  out |= {"equinorm_means": _equinorm(m, present),
          "equiangular_means": pairs["equiangular_means"],
          "maxangle_means": pairs["maxangle_means"]}
  if head is None:
    out["entropy_means"] = info.matrix_entropy(m, mask=present)
    return out
  head = check.head(head, stats.num_classes, stats.dim)
  out |= _head_angles(head, present, tile_size, mesh)
  out |= {"nc3": nc3(stats, head), "unc3": unc3(stats, head)}
  if not joint_entropy:
    h_head, h_means = info.matrix_entropy(head, mask=present), info.matrix_entropy(m, mask=present)
    return out | {"entropy_head": h_head, "entropy_means": h_means,
                  "hdr": info.hdr_from_entropies(h_head, h_means)}
  h_head, h_means, h_joint = info.entropies(head, m, mask=present)
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
    bias: jax.Array | None = None,
    mask: jax.Array | None = None,
    tile_size: int = TILE,
    joint_entropy: bool = True,
) -> dict[str, jax.Array]:
  """Every collapse and information metric of one set of features, in one jittable call.

  Jit with ``jax.jit(collapse_metrics, static_argnames=("num_classes", "tile_size",
  "joint_entropy"))``.

  Args:
    features: (n, d); labels: (n,) int; num_classes: static C;
    head: optional (C, d); bias: optional (C,); mask: optional (n,) bool;
    tile_size, joint_entropy: see :func:`collapse_metrics_from_stats`.
  Returns:
    :func:`collapse_metrics_from_stats` plus, with a head, ``nc4``.
  """
  stats = class_stats(features, labels, num_classes=num_classes, mask=mask)
  if bias is not None and head is None:
    raise ValueError("bias needs a head.")
  out = collapse_metrics_from_stats(stats, head, tile_size=tile_size,
                                    joint_entropy=joint_entropy)
  if head is not None:
    out["nc4"] = nc4(features, stats, head, bias, mask=mask, tile_size=tile_size)
  return out
