"""One rule for results float round-off may have spoiled: a metric estimates its own
error from quantities it already holds, and an eager call warns when that estimate
exceeds :data:`TOLERANCE` (docs/numerics.md). Under ``jit`` nothing is raised or warned.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp

from ncjax import _validation as check

TOLERANCE = 1e-3


class ConditioningWarning(UserWarning):
  """A metric's estimated round-off error exceeds ``ncjax.TOLERANCE`` (1e-3).

  >>> import warnings, numpy as np, ncjax
  >>> x = np.random.default_rng(0).normal(size=(512, 16))
  >>> with warnings.catch_warnings(record=True) as caught:  # H(G(x + 100)) is 1e-3 nats
  ...   warnings.simplefilter("always")
  ...   _ = ncjax.mir(np.float32(x + 100), np.float32(x))
  >>> caught[0].category.__name__
  'ConditioningWarning'
  """


def warn_if_inaccurate(error: jax.Array, what: str, cause: str,
                       condition: jax.Array | None = None) -> None:
  """Eagerly warns (:class:`ConditioningWarning`) when ``error`` (an estimate of the
  absolute error of a value of order 1, or of a relative error) exceeds TOLERANCE.

  Args:
    error: () or (...) estimate; the largest entry is judged.
    what: the metric, e.g. "NC1".
    cause: what makes it ill-conditioned, shown to the user.
    condition: optional condition number to show.
  """
  worst = check.reduced(lambda xp, e: xp.max(e), error)
  if worst is None or not worst > TOLERANCE:
    return
  if condition is not None:
    cause += f", condition {float(check.reduced(lambda xp, c: xp.max(c), condition)):.2g}"
  warnings.warn(f"{what} may be inaccurate: estimated round-off error {float(worst):.1e} > "
                f"{TOLERANCE:g} ({cause}). Use float64 (jax_enable_x64) for a reliable value.",
                ConditioningWarning, stacklevel=3)


def entropy_roundoff(size: int, dtype) -> float:
  """Absolute round-off (nats) of a matrix entropy from a spectrum of ``size``
  eigenvalues: each carries about eps of the largest (measured on near-rank-one Grams,
  docs/numerics.md)."""
  return size * float(jnp.finfo(dtype).eps)
