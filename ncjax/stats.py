"""ClassStats: streaming, mergeable per-class first and second moments.

Two jobs, two classes: :class:`ClassMoments` holds the moments and derives what the
metrics read (means, Sigma_W, Sigma_T, ...); :class:`ClassStats` is a ClassMoments that
accumulates (``empty``, ``update``, ``merge``, ``psum``).

The moments are kept about a reference point ``shift`` (shifted data) and in units of a
power of two ``scale``: a batch's features are first mapped to (h - shift) / scale, so a
common offset of 1e4 or 1e5 never enters a mean or a scatter in float32 (centred class
means stay accurate to eps relative), and features of size 1e30 or 1e-30 neither
overflow nor underflow when squared. Batches are reduced around their own class means (a
corrected two-pass) and merged with Chan et al.'s pairwise update after both are brought
to one frame (shift and scale). The accumulator is a pytree: it can be carried through
``lax.scan``, vmapped, and reduced across devices with :meth:`psum`.

The metrics in ``ncjax.collapse`` are invariant to shift and scale and read the
``scaled_*`` quantities; the plain properties (``means``, ``sigma_w``, ...) are in the
features' own units.
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from ncjax import _tiling
from ncjax import _validation as check
from ncjax.kernels import gram, matmul, power_of_two

__all__ = ["ClassMoments", "ClassStats", "class_stats"]


def _or_one(scale: jax.Array) -> jax.Array:
  """A scale of 0 (no spread at all) becomes 1."""
  return jnp.where(scale > 0, scale, 1.0).astype(scale.dtype)


@flax.struct.dataclass
class ClassMoments:
  """Per-class counts, means and scatter of features h (d-dim) with labels in [0, C), and
  every quantity derived from them: what the metrics read. Accumulated by
  :class:`ClassStats`.

  Attributes:
    counts: (C,) samples per class (float).
    shift: (d,) reference point of the moments.
    scale: () power of two; moments are those of (h - shift) / scale.
    scaled_means: (C, d) (mu_c - shift) / scale (0 for absent classes).
    scaled_within: (d, d) pooled within-class scatter sum_i (h_i - mu_{y_i})(...)^T / scale^2.
    scaled_spread: (C,) per-class sum of ||h_i - mu_c||^2 / scale^2.

  >>> import jax.numpy as jnp
  >>> stats = class_stats(jnp.array([[0.0], [2.0], [5.0]]), jnp.array([0, 0, 1]), num_classes=2)
  >>> int(stats.num_present), round(float(stats.global_mean[0]), 4), round(float(stats.sigma_w[0, 0]), 4)
  (2, 2.3333, 0.6667)
  """

  counts: jax.Array
  shift: jax.Array
  scale: jax.Array
  scaled_means: jax.Array
  scaled_within: jax.Array
  scaled_spread: jax.Array

  @property
  def num_classes(self) -> int:
    return self.counts.shape[-1]

  @property
  def dim(self) -> int:
    return self.shift.shape[-1]

  @property
  def present(self) -> jax.Array:
    """(C,) bool: classes with at least one sample."""
    return self.counts > 0

  @property
  def num_present(self) -> jax.Array:
    """Number of classes present (used wherever C appears in a metric)."""
    return jnp.sum(self.present)

  @property
  def total(self) -> jax.Array:
    return jnp.sum(self.counts, axis=-1)

  # --- in units of ``scale`` about ``shift``: what the (invariant) metrics use ---

  @property
  def scaled_global_mean(self) -> jax.Array:
    """(d,) (mu_G - shift) / scale."""
    return matmul(self.counts, self.scaled_means) / jnp.maximum(self.total, 1)

  @property
  def scaled_centred_means(self) -> jax.Array:
    """(C, d) (mu_c - mu_G) / scale; zero rows for absent classes."""
    m = self.scaled_means - self.scaled_global_mean
    return jnp.where(self.present[:, None], m, 0.0)

  @property
  def centred_means_roundoff(self) -> jax.Array:
    """() bound on the Frobenius norm of the round-off in ``scaled_centred_means``.

    The corrected two-pass leaves each mean entry within a few eps of the larger of
    the mean itself and its standard error, in units of scale (about the shift, so an
    offset adds nothing). The errors of nearly equal means are correlated (constant
    features), so the bound is the Frobenius norm over the C_present x d entries, not
    a random-matrix one. Singular values of the centred means at or below it are
    indistinguishable from 0 (``ncjax.spectral.factor_pinv``).
    """
    a = jnp.where(self.present[:, None], jnp.abs(self.scaled_means), 0.0)
    stderr = jnp.sqrt(self.scaled_class_variances / jnp.maximum(self.counts, 1))
    entry = 4 * jnp.finfo(a.dtype).eps * (jnp.max(a) + jnp.max(stderr))
    return entry * jnp.sqrt(self.num_present * self.dim).astype(a.dtype)

  def _samples(self, what: str) -> jax.Array:
    """The sample count N; eagerly raises when it is 0 (``what`` is then 0/0)."""
    total = check.reduced(lambda xp, c: xp.sum(c), self.counts)
    if total is not None and total == 0:
      raise ValueError(f"{what} of an empty ClassStats (no samples) is 0/0.")
    return self.total

  @property
  def scaled_sigma_w(self) -> jax.Array:
    """(d, d) Sigma_W / scale^2."""
    return self.scaled_within / self._samples("Sigma_W")

  @property
  def scaled_class_variances(self) -> jax.Array:
    """(C,) v_c / scale^2."""
    return self.scaled_spread / jnp.maximum(self.counts, 1)

  @property
  def scaled_weighted_means(self) -> jax.Array:
    """(C, d) sqrt(n_c / N) (mu_c - mu_G) / scale: Sigma_B (weighted) / scale^2 = its Gram."""
    total = self._samples("Sigma_B (weighted)")
    return self.scaled_centred_means * jnp.sqrt(self.counts / total)[:, None]

  @property
  def scaled_sigma_t(self) -> jax.Array:
    """(d, d) Sigma_T / scale^2 = (Sigma_W + weighted Sigma_B) / scale^2."""
    mw = self.scaled_weighted_means
    return self.scaled_sigma_w + matmul(mw.T, mw)

  # --- in the features' own units ---

  @property
  def means(self) -> jax.Array:
    """(C, d) class means mu_c (0 for absent classes)."""
    return jnp.where(self.present[:, None], self.shift + self.scale * self.scaled_means, 0.0)

  @property
  def global_mean(self) -> jax.Array:
    """(d,) mean of all samples, mu_G."""
    return self.shift + self.scale * self.scaled_global_mean

  @property
  def centred_means(self) -> jax.Array:
    """(C, d) M_c = mu_c - mu_G; zero rows for absent classes."""
    return self.scale * self.scaled_centred_means

  def _unscaled(self, scaled: jax.Array, what: str) -> jax.Array:
    """``scale^2 * scaled`` (a second moment in the features' units); eagerly raises
    when that leaves the dtype's range (features of 1e30 or 1e-30 in float32), where
    the scaled moments and every metric still hold."""
    out = self.scale**2 * scaled
    bad = check.reduced(lambda xp, s, o: xp.any(~xp.isfinite(o) | ((o == 0) & (s != 0))),
                        scaled, out)
    if bad is not None and bad:
      raise ValueError(f"{what} over- or underflows {out.dtype} at scale {float(self.scale):.3g} "
                       f"(use the scaled_* moments, in units of scale, or float64 features).")
    return out

  @property
  def sigma_w(self) -> jax.Array:
    """(d, d) within-class covariance, averaged over all samples."""
    return self._unscaled(self.scaled_sigma_w, "sigma_w")

  @property
  def sigma_b(self) -> jax.Array:
    """(d, d) Papyan's between-class covariance, unweighted over present classes."""
    m = self.scaled_centred_means
    self._samples("Sigma_B")
    return self._unscaled(matmul(m.T, m) / self.num_present, "sigma_b")


@flax.struct.dataclass
class ClassStats(ClassMoments):
  """Streaming class statistics: :class:`ClassMoments` (the fields and the derived
  quantities) that accumulate.

  Build them with :func:`class_stats` or :meth:`update`; :meth:`merge` combines two
  (Chan et al.'s parallel update), so batches, devices and processes reduce exactly.

  >>> import jax.numpy as jnp
  >>> a = class_stats(jnp.array([[0.0], [2.0]]), jnp.array([0, 1]), num_classes=2)
  >>> b = class_stats(jnp.array([[2.0], [6.0]]), jnp.array([0, 1]), num_classes=2)
  >>> s = a.merge(b)
  >>> s.means.tolist(), s.sigma_w.tolist()  # within-class variance (1 + 4) / 2
  ([[1.0], [4.0]], [[2.5]])
  """

  @classmethod
  def empty(cls, *, num_classes: int, dim: int, dtype=jnp.float32) -> ClassStats:
    """The identity of :meth:`merge`: no samples of ``num_classes`` classes in ``dim``-d.

    >>> ClassStats.empty(num_classes=3, dim=4).counts.tolist()
    [0.0, 0.0, 0.0]
    """
    num_classes = check.num_classes(num_classes)
    dim = check.static_int(dim, "dim")
    if not jnp.issubdtype(dtype, jnp.floating) or jnp.finfo(dtype).bits < 32:
      raise check.InputTypeError(f"dtype must be float32 or float64, got {jnp.dtype(dtype)}.")
    return cls._identity(num_classes, dim, dtype)

  @classmethod
  def _identity(cls, num_classes: int, dim: int, dtype) -> ClassStats:
    return cls(
        counts=jnp.zeros((num_classes,), dtype),
        shift=jnp.zeros((dim,), dtype),
        scale=jnp.ones((), dtype),
        scaled_means=jnp.zeros((num_classes, dim), dtype),
        scaled_within=jnp.zeros((dim, dim), dtype),
        scaled_spread=jnp.zeros((num_classes,), dtype),
    )

  @classmethod
  def _from_batch(cls, features, labels, num_classes: int, mask) -> ClassStats:
    """Statistics of one validated batch (see :func:`class_stats`)."""
    return cls._identity(num_classes, features.shape[1], features.dtype)._absorb(
        features, labels, mask)

  def update(self, features, labels, mask=None) -> ClassStats:
    """Adds a batch, the same as ``self.merge(class_stats(...))`` but in one n x d x d
    product.

    Args:
      features: (n, d) with d equal to this accumulator's; labels: (n,) int in [0, C);
      mask: optional (n,) bool. A batch of 0 rows changes nothing.

    >>> import jax.numpy as jnp
    >>> s = ClassStats.empty(num_classes=2, dim=1)
    >>> s = s.update(jnp.array([[1.0], [3.0]]), jnp.array([0, 1]))
    >>> s.update(jnp.array([[5.0]]), jnp.array([1])).means.tolist()
    [[1.0], [4.0]]
    """
    features = check.features(features, "features", min_rows=0)
    if features.shape[1] != self.dim:
      raise ValueError(f"features must have {self.dim} columns like these statistics, "
                       f"got shape {features.shape}.")
    mask = check.as_mask(mask, features.shape[0])
    labels = check.labels(labels, features.shape[0], self.num_classes, mask=mask)
    check.finite(features, "features", mask)
    if features.shape[0] == 0:
      return self
    return self._absorb(features.astype(self.counts.dtype), labels, mask)

  def _absorb(self, features, labels, mask) -> ClassStats:
    """:meth:`update` without validation. O(n d^2 + n d + C d): per-class sums by
    ``segment_sum`` (no n x C one-hot) and no C x d x d merge term.

    The batch is mapped into this accumulator's frame (its shift; a scale grown to cover
    the batch), and its class means b_c are found by a corrected two-pass. Chan's merge
    term n_a n_b / (n_a + n_b) (b_c - a_c)(b_c - a_c)^T is then folded into the batch's
    own scatter: centring class c's rows at b_c - sqrt(n_a / (n_a + n_b)) (b_c - a_c)
    instead of at b_c adds exactly that term, so one product of the centred rows gives
    the merged scatter. Every term added is PSD: nothing cancels.
    """
    c = self.num_classes
    labels, mask = check.kept_labels(labels, mask, c)
    keep = mask[:, None]
    features = jnp.where(keep, features, 0.0)  # padding may hold NaN
    has = self.total > 0
    n_kept = jnp.maximum(jnp.sum(mask), 1).astype(features.dtype)
    shift = jnp.where(has, self.shift, jnp.sum(features / n_kept, axis=0))  # no overflow
    x = jnp.where(keep, features - shift, 0.0)
    scale = _or_one(jnp.maximum(jnp.where(has, self.scale, 0.0),
                                power_of_two(jnp.max(jnp.abs(x)))))
    a = self._in_frame(shift, scale)
    x = x / scale
    counts = jax.ops.segment_sum(mask.astype(x.dtype), labels, c)
    per_class = lambda v: (jax.ops.segment_sum(v, labels, c)
                           / jnp.maximum(counts, 1)[:, None])
    rough = per_class(x)
    means = rough + per_class(jnp.where(keep, x - rough[labels], 0.0))
    total = a.counts + counts
    delta = means - a.scaled_means  # only rows of classes in the batch are used below
    pull = jnp.sqrt(a.counts / jnp.maximum(total, 1))
    centred = jnp.where(keep, x - (means - pull[:, None] * delta)[labels], 0.0)
    return ClassStats(
        counts=total, shift=shift, scale=scale,
        scaled_means=a.scaled_means + delta * (counts / jnp.maximum(total, 1))[:, None],
        scaled_within=a.scaled_within + gram(centred),
        scaled_spread=a.scaled_spread + jax.ops.segment_sum(jnp.sum(centred**2, axis=1),
                                                            labels, c),
    )

  def merge(self, other: ClassStats) -> ClassStats:
    """Statistics of the union of both sample sets (Chan et al. pairwise update).

    >>> import jax.numpy as jnp
    >>> a = class_stats(jnp.array([[0.0], [2.0]]), jnp.array([0, 0]), num_classes=1)
    >>> b = class_stats(jnp.array([[4.0]]), jnp.array([0]), num_classes=1)
    >>> a.merge(b).means.tolist(), a.merge(b).sigma_w.tolist()
    ([[2.0]], [[2.6666667461395264]])
    """
    if not isinstance(other, ClassStats):
      raise check.InputTypeError(f"other must be a ClassStats, got {type(other).__name__}.")
    if (other.num_classes, other.dim) != (self.num_classes, self.dim):
      raise ValueError(f"cannot merge statistics of {other.num_classes} classes in "
                       f"{other.dim}-d into {self.num_classes} classes in {self.dim}-d.")
    a_has, b_has = self.total > 0, other.total > 0
    shift = jnp.where(a_has, self.shift, other.shift)
    gap = jnp.where(a_has & b_has, jnp.max(jnp.abs(other.shift - self.shift)), 0.0)
    scale = _or_one(jnp.maximum(jnp.maximum(jnp.where(a_has, self.scale, 0.0),
                                            jnp.where(b_has, other.scale, 0.0)),
                                power_of_two(gap)))
    a, b = self._in_frame(shift, scale), other._in_frame(shift, scale)
    counts = a.counts + b.counts
    safe = jnp.maximum(counts, 1)
    delta = b.scaled_means - a.scaled_means
    weight = (a.counts * b.counts / safe)[:, None]
    return ClassStats(
        counts=counts, shift=shift, scale=scale,
        scaled_means=a.scaled_means + delta * (b.counts / safe)[:, None],
        scaled_within=a.scaled_within + b.scaled_within + matmul((delta * weight).T, delta),
        scaled_spread=a.scaled_spread + b.scaled_spread + weight[:, 0] * jnp.sum(delta**2, 1),
    )

  def _in_frame(self, shift: jax.Array, scale: jax.Array) -> ClassStats:
    """The same statistics about ``shift`` in units of ``scale`` (scale >= self.scale)."""
    # A power of two: exact. An empty accumulator (the identity, scale 1) may meet a
    # smaller scale; its moments are all 0, and ratio^2 must not overflow into 0 * inf.
    ratio = jnp.where(self.total > 0, self.scale / scale, 0.0)
    means = self.scaled_means * ratio + (self.shift - shift) / scale
    return ClassStats(
        counts=self.counts, shift=shift, scale=scale,
        scaled_means=jnp.where(self.present[:, None], means, 0.0),
        scaled_within=self.scaled_within * ratio**2,
        scaled_spread=self.scaled_spread * ratio**2,
    )

  def psum(self, axis_name) -> ClassStats:
    """Merges the statistics held by every device along ``axis_name`` (inside
    ``jax.shard_map`` or a ``vmap`` with that ``axis_name``).

    >>> import jax, jax.numpy as jnp
    >>> h, y = jnp.array([[[0.0]], [[2.0]]]), jnp.zeros((2, 1), jnp.int32)
    >>> merged_means = jax.vmap(
    ...     lambda h, y: class_stats(h, y, num_classes=1).psum("rows").means, axis_name="rows")
    >>> merged_means(h, y).tolist()  # each member holds the merged statistics
    [[[1.0]], [[1.0]]]
    """
    try:
      jax.lax.axis_index(axis_name)
    except NameError:
      raise ValueError(f"ClassStats.psum merges across the mapped axis {axis_name!r}: call it "
                       "inside jax.shard_map (or a vmap) that names that axis.") from None
    total = jax.lax.psum(self.total, axis_name)
    shift = jax.lax.psum(self.shift * (self.total / jnp.maximum(total, 1)), axis_name)
    has = self.total > 0
    own = jnp.maximum(self.scale, power_of_two(jnp.max(jnp.abs(self.shift - shift))))
    scale = jax.lax.pmax(jnp.where(has, own, 0.0), axis_name)
    local = self._in_frame(shift, _or_one(scale))
    counts = jax.lax.psum(local.counts, axis_name)
    safe = jnp.maximum(counts, 1)[:, None]
    means = jax.lax.psum(local.scaled_means * local.counts[:, None], axis_name) / safe
    delta = local.scaled_means - means
    weight = local.counts[:, None]
    return ClassStats(
        counts=counts, shift=shift, scale=local.scale, scaled_means=means,
        scaled_within=jax.lax.psum(local.scaled_within + matmul((delta * weight).T, delta),
                                   axis_name),
        scaled_spread=jax.lax.psum(
            local.scaled_spread + weight[:, 0] * jnp.sum(delta**2, axis=1), axis_name),
    )

def class_stats(
    features: jax.Array,
    labels: jax.Array,
    *,
    num_classes: int,
    mask: jax.Array | None = None,
    mesh=None,
) -> ClassStats:
  """Class statistics of a set of features: what every collapse metric takes.

  Args:
    features: (n, d) real floating features.
    labels: (n,) int in [0, num_classes).
    num_classes: static C.
    mask: optional (n,) bool; False rows are ignored.
    mesh: optional sample mesh (``ncjax.sharding.sample_mesh()``) over which the rows
      are sharded (``ncjax.sharding.shard_rows``): one batch of statistics per device,
      merged with :meth:`ClassStats.psum`.
  Returns:
    A :class:`ClassStats` (replicated when a mesh is given).

  >>> import jax.numpy as jnp
  >>> stats = class_stats(jnp.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]]),
  ...                     jnp.array([0, 0, 1]), num_classes=2)
  >>> stats.counts.tolist(), stats.means.tolist()
  ([2.0, 1.0], [[1.0, 1.0], [4.0, 4.0]])
  """
  num_classes = check.num_classes(num_classes)
  features = check.features(features, "features", min_rows=1)
  mask = check.as_mask(mask, features.shape[0])
  labels = check.labels(labels, features.shape[0], num_classes, mask=mask)
  check.finite(features, "features", mask)
  mesh = _tiling.check_mesh(mesh)
  if mesh is None:
    return ClassStats._from_batch(features, labels, num_classes, mask)
  return _stats_on_mesh(features, labels, mask, num_classes=num_classes, mesh=mesh)


@functools.partial(jax.jit, static_argnames=("num_classes", "mesh"))
def _stats_on_mesh(features, labels, mask, *, num_classes: int, mesh) -> ClassStats:
  """Each device's ClassStats of its rows, merged over the mesh: one program per
  (shapes, num_classes, mesh), so eager calls reuse it (a fresh shard_map would not)."""
  local = lambda h, y, m: ClassStats._from_batch(h, y, num_classes, m).psum(_tiling.SAMPLES)
  return _tiling.map_rows(local, mesh, features, labels, mask)


def checked(stats, minimum: int = 2) -> ClassStats:
  """``stats`` if it is a ClassStats with at least ``minimum`` classes present (eagerly)."""
  if not isinstance(stats, ClassStats):
    raise check.InputTypeError(f"stats must be a ClassStats (ncjax.class_stats(features, labels,"
                               f" num_classes=...)), got {type(stats).__name__}.")
  if stats.num_classes < minimum:
    raise ValueError(f"num_classes must be >= {minimum} for this metric, got {stats.num_classes}.")
  check.classes_present(stats.counts, minimum)
  return stats


def require_distinct_means(stats: ClassStats, metric: str) -> None:
  """Eagerly raises when every present class mean equals the global mean to round-off
  (``ClassStats.centred_means_roundoff``; e.g. constant features), where ``metric`` is
  0/0; under jit it is NaN (or 0, documented per metric) then."""
  m = stats.scaled_centred_means
  if not check.is_concrete(m):
    return
  norm, noise = (float(check.host(x)) for x in (jnp.linalg.norm(m), stats.centred_means_roundoff))
  if norm <= noise:
    raise ValueError(f"{metric} is 0/0: all class means are equal (their spread {norm:.2g} is "
                     f"within float round-off {noise:.2g}, in units of the features' scale).")
