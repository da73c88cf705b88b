"""Input validation shared by every public metric.

Shape problems are static, so they raise ``ValueError`` both eagerly and at trace
time inside ``jit``/``vmap``. Arrays that span several processes are checked through
reductions computed where they live (every process calls the metric, so every process
takes part); their rows are never fetched. Value problems (NaN/Inf, zero rows, too few unmasked
rows, labels out of range) can only be seen on concrete arrays: they raise eagerly
and are skipped under tracing, where they surface as NaN outputs that
``jax.experimental.checkify.checkify(fn, errors=checkify.float_checks)`` reports.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


class InputTypeError(TypeError, ValueError):
  """A wrong dtype or type: a TypeError, and a ValueError like every other input error."""


def is_concrete(*arrays) -> bool:
  """True when no argument is a tracer (eager call), so values can be checked."""
  return not any(isinstance(a, jax.core.Tracer) for a in arrays if a is not None)


def _spans_processes(a) -> bool:
  """True for a global array with data on devices of other processes."""
  return isinstance(a, jax.Array) and not a.is_fully_addressable and not a.is_fully_replicated


def host(x) -> np.ndarray:
  """A NumPy copy of a concrete (small) array; one spanning several processes is gathered
  (a collective: every process must call it, as every process calls the metric)."""
  if _spans_processes(x):
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def reduced(fn, *arrays):
  """``fn(xp, *arrays)`` (a small pytree) on concrete arrays, else None (traced: no
  checks). On host copies (``xp`` = NumPy; inside a trace even concrete constants would
  become tracers); arrays spanning several processes are reduced where they live
  (``xp`` = jnp, jitted, the result replicated), never fetched."""
  if not is_concrete(*arrays):
    return None
  spanning = [a for a in arrays if _spans_processes(a)]
  if not spanning:
    return fn(np, *(None if a is None else np.asarray(a) for a in arrays))
  mesh = spanning[0].sharding.mesh
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  out = jax.jit(lambda *a: fn(jnp, *a), out_shardings=replicated)(*arrays)
  return jax.tree.map(np.asarray, out)


def array(x, name: str) -> jax.Array:
  try:
    return jnp.asarray(x)
  except TypeError as e:
    raise InputTypeError(f"{name} must be an array, got {type(x).__name__}.") from e


def as_mask(mask, n: int, name: str = "mask") -> jax.Array:
  """Returns an (n,) bool mask (all True when ``mask`` is None)."""
  if mask is None:
    return jnp.ones((n,), bool)
  mask = array(mask, name)
  if mask.shape != (n,):
    raise ValueError(f"{name} must have shape ({n},), got {mask.shape}.")
  if mask.dtype != bool:
    raise InputTypeError(f"{name} must be boolean (True keeps a row), got dtype {mask.dtype}.")
  return mask


def real_floating(x, name: str) -> jax.Array:
  """``x`` as an array of a real floating dtype; float16/bfloat16 are upcast to float32
  (the eigen-based metrics need float32's range and precision). Integers, booleans and
  complex numbers raise TypeError."""
  x = array(x, name)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise InputTypeError(f"{name} must be real floating point, got dtype {x.dtype} "
                    "(cast with .astype(jnp.float32)).")
  if jnp.finfo(x.dtype).bits < 32:
    x = x.astype(jnp.float32)
  return x


def features(z, name: str, *, min_rows: int = 2) -> jax.Array:
  """Checks the static shape and dtype of an (n, d) feature matrix; returns it as an array."""
  z = real_floating(z, name)
  if z.ndim != 2:
    raise ValueError(f"{name} must be 2-D (n, d), got shape {z.shape}.")
  if z.shape[0] < min_rows:
    raise ValueError(f"{name} needs at least {min_rows} rows, got {z.shape[0]}.")
  if z.shape[1] < 1:
    raise ValueError(f"{name} needs at least one column, got shape {z.shape}.")
  return z


def integer_scalar(x, name: str) -> jax.Array:
  """Checks a () integer that may be traced (e.g. a vmapped sweep): a Python or NumPy
  int or an integer array; floats (also 2.0), booleans and other types raise."""
  try:
    a = jnp.asarray(x)
  except TypeError:
    a = None
  if a is None or a.ndim != 0 or not jnp.issubdtype(a.dtype, jnp.integer):
    raise InputTypeError(f"{name} must be an integer scalar (it may be traced), got {x!r}.")
  return a


def static_int(value, name: str, minimum: int = 1) -> int:
  """Checks a static integer option (a Python or NumPy int, not a bool) >= ``minimum``."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
      or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum} (static under jit), got {value!r}.")
  return int(value)


def static_bool(value, name: str) -> bool:
  """Checks a static flag: a Python (or NumPy) bool, never a traced one."""
  if not isinstance(value, (bool, np.bool_)):
    raise InputTypeError(f"{name} must be a Python bool (static under jit: list it in "
                         "static_argnames, or use ncjax's jitted entry points), got "
                         f"{value!r}.")
  return bool(value)


def num_classes(c) -> int:
  """Checks a static class count: a Python (or NumPy) int >= 1."""
  return static_int(c, "num_classes")


def head(w, num_classes: int, dim: int, name: str = "head") -> jax.Array:
  """Checks (C, d) classifier weights."""
  w = real_floating(w, name)
  if w.shape != (num_classes, dim):
    raise ValueError(f"{name} must have shape ({num_classes}, {dim}) (C, d), got {w.shape}.")
  finite(w, name)
  return w


def head_or_kernel(head_, kernel, num_classes: int, dim: int, *, required: bool):
  """The (C, d) classifier weights from ``head`` (C, d) or ``kernel`` (d, C), Flax's
  ``nn.Dense`` layout (``params[...]["kernel"]``), checked like :func:`head`; None when
  neither is given and not ``required``. Two names, so the layout is explicit: at
  d == C a transposed head has the right shape and gives silently wrong values."""
  if head_ is not None and kernel is not None:
    raise ValueError("give head (C, d) or kernel (d, C), not both.")
  if kernel is None:
    if head_ is None and required:
      raise ValueError("head (C, d) (or a Flax kernel (d, C) as kernel=) is required.")
    return None if head_ is None else head(head_, num_classes, dim)
  kernel = real_floating(kernel, "kernel")
  if kernel.shape != (dim, num_classes):
    raise ValueError(f"kernel must have shape ({dim}, {num_classes}) (d, C: Flax's Dense "
                     f"layout), got {kernel.shape}.")
  finite(kernel, "kernel")
  return kernel.T


def bias(b, num_classes: int, dtype, name: str = "bias") -> jax.Array:
  """Checks a (C,) bias; None gives zeros."""
  if b is None:
    return jnp.zeros((num_classes,), dtype)
  b = real_floating(b, name)
  if b.shape != (num_classes,):
    raise ValueError(f"{name} must have shape ({num_classes},) (C,), got {b.shape}.")
  finite(b, name)
  return b


def classifier_inputs(features_, mask, num_classes: int, dim: int, *, head_, bias_, logits_,
                      head_required: bool, kernel_=None):
  """Validated (features, head, bias, logits, mask) of a function that takes the
  classifier's predictions on (n, dim) features: from a (C, dim) head (or its (dim, C)
  Flax ``kernel``) and optional bias, or from the (n, C) logits the caller already has
  (then bias must be None). ``head`` is None where it is not required and logits are
  given; ``logits`` None with a head."""
  head_ = head_or_kernel(head_, kernel_, num_classes, dim, required=False)
  features_ = features(features_, "features", min_rows=1)
  n, d = features_.shape
  if d != dim:
    raise ValueError(f"features must have {dim} columns like stats, got shape {(n, d)}.")
  if head_ is None and head_required:
    raise ValueError("head (C, d) is required (or a Flax kernel (d, C) as kernel=).")
  if head_ is None and logits_ is None:
    raise ValueError("head (C, d) or logits (n, C) is required (or a Flax kernel (d, C) "
                     "as kernel=).")
  if logits_ is not None:
    if bias_ is not None:
      raise ValueError("bias must be None when logits are given (they include it).")
    if head_ is not None and not head_required:
      raise ValueError("give head (with bias) or logits, not both.")
    logits_ = real_floating(logits_, "logits")
    if logits_.shape != (n, num_classes):
      raise ValueError(f"logits must have shape ({n}, {num_classes}) (n, C), got "
                       f"{logits_.shape}.")
  if logits_ is None:
    bias_ = bias(bias_, num_classes, features_.dtype)
  mask = as_mask(mask, n)
  finite(features_, "features", mask)
  if logits_ is not None:
    finite(logits_, "logits", mask)
  return features_, head_, bias_, logits_, mask


def same_rows(**named: jax.Array) -> int:
  """Checks that all arrays share their leading dimension; returns it."""
  sizes = {k: v.shape[0] for k, v in named.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"arguments must have the same number of rows, got {sizes}.")
  return next(iter(sizes.values()))


def _all_finite(xp, x, mask):
  """All of ``x`` (n, ...) finite, in the rows ``mask`` (n,) keeps (all rows if None)."""
  if mask is None:
    return xp.all(xp.isfinite(x))
  return xp.all(xp.isfinite(x) | ~xp.reshape(mask, mask.shape + (1,) * (x.ndim - 1)))


def finite(x: jax.Array, name: str, mask: jax.Array | None = None) -> None:
  """Eagerly raises if ``x`` holds NaN or Inf (in unmasked rows, if ``mask`` is given)."""
  ok = reduced(_all_finite, x, mask)
  if ok is not None and not ok:
    raise ValueError(f"{name} contains NaN or Inf.")


def rows_nonzero(z: jax.Array, mask: jax.Array, name: str) -> None:
  """Eagerly raises if an unmasked row of ``z`` is all zeros (no direction)."""
  zero = reduced(lambda xp, z, m: xp.all(z == 0, axis=1) & m, z, mask)
  if zero is not None and zero.any():
    raise ValueError(
        f"{name} has all-zero rows at {np.flatnonzero(zero)[:10].tolist()}; "
        "they cannot be normalised (mask them out)."
    )


def _roundoff(dtype) -> float:
  """sqrt(eps): how far from symmetric, or below zero, relative to the largest entry or
  eigenvalue, a matrix or spectrum computed in ``dtype`` may be from round-off."""
  return float(np.sqrt(np.finfo(dtype).eps))


def symmetric(k, name: str) -> None:
  """Eagerly raises unless every matrix of the (..., n, n) stack ``k`` is symmetric up to
  round-off: max |k - k^T| <= sqrt(eps) max |k|."""
  tol = _roundoff(k.dtype)
  excess = reduced(lambda xp, k: xp.max(
      xp.max(xp.abs(k - xp.swapaxes(k, -1, -2)), axis=(-2, -1))
      - tol * xp.max(xp.abs(k), axis=(-2, -1)), initial=-np.inf), k)
  if excess is not None and excess > 0:
    raise ValueError(f"{name} must be symmetric (to sqrt(eps) = {tol:.2g} of its largest "
                     "entry).")


def nonnegative_spectrum(w, name: str) -> None:
  """Eagerly raises if a (..., n) spectrum has a value below -sqrt(eps) times its largest
  (a negative eigenvalue beyond round-off: not the spectrum of a PSD matrix)."""
  tol = _roundoff(w.dtype)
  excess = reduced(lambda xp, w: xp.max(-xp.min(w, axis=-1) - tol * xp.max(w, axis=-1),
                                        initial=-np.inf), w)
  if excess is not None and excess > 0:
    raise ValueError(f"{name} must be >= 0 (to sqrt(eps) = {tol:.2g} of the largest): a "
                     "negative eigenvalue beyond round-off is not a PSD spectrum.")


def psd(k: jax.Array, mask: jax.Array, name: str) -> None:
  """Eagerly raises unless the unmasked block of ``k`` is symmetric and positive
  semi-definite up to round-off (sqrt(eps) of its largest entry and eigenvalue)."""
  if not is_concrete(k, mask):
    return
  values, keep = host(k), host(mask)  # an n x n eigenproblem on the host anyway
  block = values[np.ix_(keep, keep)]
  symmetric(block, name)
  w = np.linalg.eigvalsh(block.astype(np.float64))
  if w[-1] <= 0 or w[0] < -_roundoff(k.dtype) * w[-1]:
    raise ValueError(f"{name} must be positive semi-definite with a positive trace "
                     f"(eigenvalues range over [{w[0]:.3g}, {w[-1]:.3g}]).")


def not_all_zero(x: jax.Array, keep: jax.Array, name: str, why: str) -> None:
  """Eagerly raises if every row of ``x`` that ``keep`` (bool, one per row) keeps is
  zero; ``why`` says what cannot be computed then."""
  zero = reduced(lambda xp, x, keep: xp.all((x == 0) | ~keep[:, None]), x, keep)
  if zero is not None and zero:
    raise ValueError(f"{name} is all zero in the rows used: {why}.")


def enough_rows(mask: jax.Array, name: str = "mask", minimum: int = 2) -> None:
  """Eagerly raises if fewer than ``minimum`` rows are unmasked."""
  kept = reduced(lambda xp, m: xp.sum(m), mask)
  if kept is not None and int(kept) < minimum:
    raise ValueError(f"{name} keeps {int(kept)} rows; at least {minimum} are needed.")


def feature_inputs(mask, **named) -> tuple[list[jax.Array], jax.Array]:
  """Validates feature matrices sharing n rows and their mask.

  Returns the arrays (in argument order) and the (n,) bool mask.
  """
  arrays = {k: features(v, k) for k, v in named.items()}
  n = same_rows(**arrays)
  mask = as_mask(mask, n)
  for k, v in arrays.items():
    finite(v, k, mask)  # padding may hold anything
    rows_nonzero(v, mask, k)
  enough_rows(mask)
  return list(arrays.values()), mask


def labels(y, n: int, num_classes: int, name: str = "labels", mask=None) -> jax.Array:
  """Checks (n,) integer labels; eagerly also that those of the rows ``mask`` keeps (all
  if None) lie in [0, num_classes): masked rows' labels may be anything (e.g. -1)."""
  y = array(y, name)
  if y.shape != (n,):
    raise ValueError(f"{name} must have shape ({n},), one per row, got {y.shape}.")
  if not jnp.issubdtype(y.dtype, jnp.integer):
    raise InputTypeError(f"{name} must be integers, got dtype {y.dtype}.")
  lo, hi = jnp.iinfo(y.dtype).min, jnp.iinfo(y.dtype).max
  bounds = reduced(lambda xp, y, keep: (xp.min(xp.where(keep, y, hi), initial=hi),
                                        xp.max(xp.where(keep, y, lo), initial=lo)),
                   y, as_mask(mask, n))
  if bounds is not None and bounds[0] <= bounds[1] and not (
      bounds[0] >= 0 and bounds[1] < num_classes):
    raise ValueError(f"{name} must lie in [0, {num_classes}) in the rows kept, got range "
                     f"[{bounds[0]}, {bounds[1]}].")
  return y


def kept_labels(y: jax.Array, mask: jax.Array, num_classes: int):
  """(labels, mask) as the metrics use them: masked rows' labels (anything, e.g. -1)
  replaced by 0; unmasked labels outside [0, num_classes), which only a traced call lets
  through (:func:`labels` raises eagerly), dropped from the mask but kept as indices, so
  that ``checkify.checkify(fn, errors=checkify.index_checks)`` reports them."""
  y = jnp.where(mask, y, 0)
  return y, mask & (y >= 0) & (y < num_classes)


def classes_present(counts: jax.Array, minimum: int = 2) -> None:
  """Eagerly raises if fewer than ``minimum`` classes have samples."""
  present = reduced(lambda xp, c: xp.sum(c > 0), counts)
  if present is not None:
    present = int(present)
    if present < minimum:
      raise ValueError(f"{present} class(es) present; at least {minimum} are needed.")
