"""The public surface (``ncjax.__all__`` and the public functions of its modules) under a
hostile-input sweep: every callable meets every class of bad input (wrong rank and dtype,
empty, one row, NaN/Inf, zero rows, int/float/wrong-length masks, labels out of range, one
class, scales 1e-30 and 1e30, offsets 1e4 and 1e5), eagerly and under ``jit``.

Each call must end one of two ways: an error of ncjax's own (a ValueError/TypeError raised
in ncjax's code, so it names the argument, not a JAX internal), or a finite value equal to
the same call evaluated in float64 (``jax.enable_x64``) on the same inputs. Under ``jit``
a static error may come at trace time; a value must equal the eager one. Run this file as
a script (``python -m tests.test_api``) to print the outcome table.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ncjax
from ncjax import losses, progress, spectral
from ncjax.stats import ClassStats

N, D, C = 24, 6, 4
_RNG = np.random.default_rng(7)
_LABELS = np.arange(N) % C
_MEANS = 4.0 * np.eye(C, D)
Z = (_MEANS[_LABELS] + 0.5 * _RNG.normal(size=(N, D))).astype(np.float32)
Z2 = (np.tanh(Z @ _RNG.normal(size=(D, 5))) + 0.1 * _RNG.normal(size=(N, 5)) + 2.0).astype(
    np.float32)
HEAD = (_MEANS - _MEANS.mean(0) + 0.1 * _RNG.normal(size=(C, D))).astype(np.float32)
NCJAX_DIR = os.path.dirname(ncjax.__file__)


@dataclasses.dataclass(frozen=True)
class Batch:
  """One input of the sweep: features z (n, d), second features z2 (n, d2), labels y (n,),
  mask (n,) or None, and the class count c."""
  z: np.ndarray
  z2: np.ndarray
  y: np.ndarray
  mask: np.ndarray | None
  c: int

  def head(self, dtype=np.float32):
    return np.resize(HEAD, (self.c, D)).astype(dtype)


BASE = Batch(Z, Z2, _LABELS, None, C)


def _rows(b: Batch, keep) -> Batch:
  mask = None if b.mask is None else b.mask[keep]
  return dataclasses.replace(b, z=b.z[keep], z2=b.z2[keep], y=b.y[keep], mask=mask)


def _poke(a, value, row=3):
  a = a.copy()
  a[row, 1] = value
  return a


def _masked_nan(b: Batch) -> Batch:
  mask = np.ones(N, bool)
  mask[3] = False
  return dataclasses.replace(b, z=_poke(b.z, np.nan), z2=_poke(b.z2, np.nan), mask=mask)


def _zero_row(b: Batch) -> Batch:
  z, z2 = b.z.copy(), b.z2.copy()
  z[2], z2[2] = 0, 0
  return dataclasses.replace(b, z=z, z2=z2)


def _labels(b: Batch, first) -> Batch:
  y = b.y.copy()
  y[0] = first
  return dataclasses.replace(b, y=y)


def _affine(scale: float, offset: float):
  def change(b: Batch) -> Batch:
    return dataclasses.replace(b, z=(b.z * scale + offset).astype(np.float32),
                               z2=(b.z2 * scale + offset).astype(np.float32))
  return change


CASES = {
    "base": lambda b: b,
    "half masked": lambda b: dataclasses.replace(b, mask=np.arange(N) < N // 2),
    "rank 1": lambda b: dataclasses.replace(b, z=b.z[0], z2=b.z2[0]),
    "rank 3": lambda b: dataclasses.replace(b, z=b.z[None], z2=b.z2[None]),
    "int dtype": lambda b: dataclasses.replace(b, z=b.z.astype(np.int32),
                                               z2=b.z2.astype(np.int32)),
    "empty": lambda b: _rows(b, slice(0, 0)),
    "one row": lambda b: _rows(b, slice(0, 1)),
    "NaN": lambda b: dataclasses.replace(b, z=_poke(b.z, np.nan), z2=_poke(b.z2, np.nan)),
    "Inf": lambda b: dataclasses.replace(b, z=_poke(b.z, np.inf), z2=_poke(b.z2, np.inf)),
    "NaN in a masked row": _masked_nan,
    "zero row": _zero_row,
    "int mask": lambda b: dataclasses.replace(b, mask=np.ones(N, np.int32)),
    "float mask": lambda b: dataclasses.replace(b, mask=np.ones(N, np.float32)),
    "short mask": lambda b: dataclasses.replace(b, mask=np.ones(N - 1, bool)),
    "label = C": lambda b: _labels(b, C),
    "label -1": lambda b: _labels(b, -1),
    "float labels": lambda b: dataclasses.replace(b, y=b.y.astype(np.float32)),
    "one class": lambda b: dataclasses.replace(b, y=np.zeros(N, int), c=1),
    "one class present": lambda b: dataclasses.replace(b, y=np.zeros(N, int)),
    "scale 1e-30": _affine(1e-30, 0.0),
    "scale 1e30": _affine(1e30, 0.0),
    "offset 1e4": _affine(1.0, 1e4),
    "offset 1e5": _affine(1.0, 1e5),
}


def _stats(b: Batch, **kw) -> ClassStats:
  return ncjax.class_stats(b.z, b.y, num_classes=b.c, mask=b.mask, **kw)


def _logits(b: Batch):
  return b.z[..., :b.c] if np.ndim(b.z) else b.z


def _mesh():
  return ncjax.sharding.sample_mesh(jax.devices()[:2])


def _on_mesh(b: Batch):
  """z, z2, y and mask sharded over two devices (rows padded to a multiple of 2)."""
  (z, z2, y), mask = ncjax.sharding.shard_rows(_mesh(), b.z, b.z2, b.y, mask=b.mask)
  return z, z2, y, mask


def _stats_on_mesh(b: Batch) -> ClassStats:
  z, _, y, mask = _on_mesh(b)
  return ncjax.class_stats(z, y, num_classes=b.c, mask=mask, mesh=_mesh())


def _entropy_on_mesh(b: Batch):
  z, _, _, mask = _on_mesh(b)
  return ncjax.matrix_entropy(z, mask=mask, mesh=_mesh())


def _stats_update(b: Batch) -> ClassStats:
  empty = ClassStats.empty(num_classes=b.c, dim=D, dtype=jnp.result_type(float))
  return empty.update(b.z, b.y, mask=b.mask)


def _merged(b: Batch) -> ClassStats:
  n = np.shape(b.z)[0] // 2
  return _stats(_rows(b, slice(0, n))).merge(_stats(_rows(b, slice(n, None))))


def _kernel(z, rows: bool):
  """A PSD kernel of the features, linear in their scale (no under- or overflow):
  Z Z^T (rows) or Z^T Z with one factor over max |z|; a z that is not 2-D, or not
  floating, passes through as it is (or as its integer product)."""
  if jnp.ndim(z) != 2 or not jnp.size(z):
    return z
  z = jnp.asarray(z)
  unit = z / jnp.max(jnp.abs(z)) if jnp.issubdtype(z.dtype, jnp.floating) else z
  return unit @ z.T if rows else unit.T @ z


def _moments(s: ClassStats):
  """Counts, means and the two covariances (one leaf: one unit, one tolerance)."""
  return s.counts, s.means, jnp.stack([s.sigma_w, s.sigma_b])


# name -> the call on one Batch; the head is (c, d) and the OOD features are z2 + 1.
CALLS = {
    "class_stats": lambda b: _moments(_stats(b)),
    "class_stats(mesh=)": lambda b: _moments(_stats_on_mesh(b)),
    "ClassStats.update": lambda b: _moments(_stats_update(b)),
    "ClassStats.merge": lambda b: _moments(_merged(b)),
    "nc1": lambda b: ncjax.nc1(_stats(b)),
    "vci": lambda b: ncjax.vci(_stats(b)),
    "cdnv": lambda b: ncjax.cdnv(_stats(b)),
    "gnc2": lambda b: ncjax.gnc2(_stats(b)),
    "nc2": lambda b: ncjax.nc2(_stats(b)),
    "nc2(head=)": lambda b: ncjax.nc2(_stats(b), head=b.head()),
    "nc2(head=, mesh=)": lambda b: ncjax.nc2(_stats(b), head=b.head(), mesh=_mesh(),
                                             precision="BF16_BF16_F32_X3"),
    "nc3": lambda b: ncjax.nc3(_stats(b), head=b.head()),
    "unc3": lambda b: ncjax.unc3(_stats(b), head=b.head()),
    "nc4": lambda b: ncjax.nc4(_stats(b), b.z, head=b.head(), mask=b.mask),
    "nc4(logits=)": lambda b: ncjax.nc4(_stats(b), b.z, logits=_logits(b), mask=b.mask),
    "effective_rank": lambda b: ncjax.effective_rank(b.z, mask=b.mask),
    "collapse_metrics": lambda b: ncjax.collapse_metrics(
        b.z, b.y, num_classes=b.c, head=b.head(), mask=b.mask),
    "collapse_metrics(kernel=)": lambda b: ncjax.collapse_metrics(
        b.z, b.y, num_classes=b.c, kernel=b.head().T, mask=b.mask, joint_entropy=False),
    "collapse_metrics_from_stats": lambda b: ncjax.collapse_metrics_from_stats(
        _stats(b), head=b.head()),
    "nci_score": lambda b: ncjax.nci_score(_stats(b), b.z + 1, head=b.head(), alpha=0.1),
    "nc5": lambda b: ncjax.nc5(_stats(b), b.z + 3, mask=b.mask),
    "gram_entropy": lambda b: ncjax.gram_entropy(_kernel(b.z, rows=True), mask=b.mask),
    "matrix_entropy": lambda b: ncjax.matrix_entropy(b.z, mask=b.mask, normalized=True),
    "matrix_entropy(mesh=)": lambda b: _entropy_on_mesh(b),
    "joint_entropy": lambda b: ncjax.joint_entropy(b.z, b.z2, mask=b.mask),
    "joint_entropy(kronecker)": lambda b: ncjax.joint_entropy(
        b.z, b.z2, mask=b.mask, method="kronecker", chunk_size=8),
    "joint_entropy_slq": lambda b: ncjax.joint_entropy_slq(
        b.z, b.z2, key=jax.random.key(0), mask=b.mask)[0],
    "entropies": lambda b: ncjax.entropies(b.z, b.z2, mask=b.mask),
    "label_entropies": lambda b: ncjax.label_entropies(b.z, b.head(), b.y, mask=b.mask),
    "mutual_information": lambda b: ncjax.mutual_information(b.z, b.z2, mask=b.mask),
    "mir": lambda b: ncjax.mir(b.z, b.z2, mask=b.mask),
    "hdr": lambda b: ncjax.hdr(b.z, b.z2, mask=b.mask),
    "mir_from_entropies": lambda b: ncjax.mir_from_entropies(*ncjax.entropies(
        b.z, b.z2, mask=b.mask)),
    "hdr_from_entropies": lambda b: ncjax.hdr_from_entropies(*ncjax.entropies(
        b.z, b.z2, mask=b.mask)[:2]),
    "cosine_gram": lambda b: ncjax.cosine_gram(b.z, mask=b.mask),
    "normalize_rows": lambda b: ncjax.normalize_rows(b.z, mask=b.mask),
    "hadamard_features": lambda b: ncjax.hadamard_features(b.z, b.z2),
    "cross_entropy": lambda b: losses.cross_entropy(_logits(b), b.y, label_smoothing=0.1,
                                                    mask=b.mask),
    "cma_loss": lambda b: losses.cma_loss(b.z, b.y, b.head(), num_classes=b.c, mask=b.mask),
    "info_regularizer": lambda b: losses.info_regularizer(b.z, b.y, b.head(), lam=0.1,
                                                          lam2=0.1, mask=b.mask),
    "supervised_loss": lambda b: losses.supervised_loss(
        _logits(b), b.y, b.z, b.head(), info_lam=0.1, cma_lam=0.1, mask=b.mask),
    "weight_norm": lambda b: progress.weight_norm({"z": b.z, "z2": b.z2}),
    "psd_eigvalsh": lambda b: spectral.psd_eigvalsh(_kernel(b.z, rows=False)),
    "psd_entropy": lambda b: spectral.psd_entropy(_kernel(b.z, rows=False)),
    "sharding.eigvalsh": lambda b: ncjax.sharding.eigvalsh(_kernel(b.z, rows=False)[None],
                                                           _mesh()),
    "spectrum_entropy": lambda b: spectral.spectrum_entropy(jnp.abs(b.z[..., 0])),
}


# Outputs in the features' units (compared relative to their size only); every other
# output is dimensionless (nats, ratios, losses: also 5e-5 absolute, about twice the
# float32 round-off n eps log(1/eps) of the entropy of a 24 x 24 kernel).
SCALED = ("class_stats", "class_stats(mesh=)", "ClassStats.update", "ClassStats.merge",
          "hadamard_features", "psd_eigvalsh", "sharding.eigvalsh", "weight_norm", "nci_score")
# A norm of NaN or Inf parameters is NaN or Inf: the trainer logs it as measured.
PROPAGATES = ("weight_norm",)
NON_FINITE = ("NaN", "Inf", "NaN in a masked row")


# The calls that compile a program of their own per input (a mesh, SLQ's loops, a vmap
# over classes) meet these cases only: the test suite's time.
SOME_CASES = ("base", "half masked", "one row", "NaN", "int mask", "label = C", "one class",
              "scale 1e30", "offset 1e5")
COSTLY = ("class_stats(mesh=)", "matrix_entropy(mesh=)", "nc2(head=, mesh=)", "joint_entropy_slq",
          "cma_loss", "sharding.eigvalsh")


def cases_of(name: str) -> tuple[str, ...]:
  return SOME_CASES if name in COSTLY else tuple(CASES)


def _own_error(e: BaseException) -> bool:
  """A ValueError/TypeError raised by ncjax's code (the innermost frame is ncjax's)."""
  frames = traceback.extract_tb(e.__traceback__)
  return isinstance(e, (ValueError, TypeError)) and bool(frames) and \
      frames[-1].filename.startswith(NCJAX_DIR)


def _leaves(out):
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(out)]


def _close(got, want, absolute: float = 0.0) -> bool:
  """Every leaf equal to 2e-3 of the largest |entry| (plus ``absolute``)."""
  if len(got) != len(want):
    return False
  for g, w in zip(got, want, strict=True):
    top = np.max(np.abs(w), initial=0.0)
    if g.shape != w.shape or not np.allclose(g, w, rtol=2e-3, atol=2e-3 * top + absolute):
      return False
  return True


def _float64(b: Batch) -> Batch:
  wide = lambda a: a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a
  return dataclasses.replace(b, z=wide(b.z), z2=wide(b.z2))


def _attempt(fn):
  try:
    return "value", _leaves(fn())
  except Exception as e:  # noqa: BLE001 (the sweep classifies every exception)
    return ("error" if _own_error(e) else "internal error"), f"{type(e).__name__}: {e}"


@functools.cache
def eager_outcome(name: str, case: str) -> tuple[str, object]:
  """'error' (ncjax's), 'internal error', 'NaN' (non-finite value), 'propagated' (a
  non-finite value of a non-finite input, where documented), 'wrong' (not the float64
  value), or 'value' (equal to float64); with the value or the message. Cached: the
  jitted sweep compares with the eager sweep's outcome (one file, one worker)."""
  call, b = CALLS[name], CASES[case](BASE)
  kind, out = _attempt(lambda: call(b))
  if kind != "value":
    return kind, out
  if not all(np.all(np.isfinite(x)) for x in out):
    return ("propagated" if name in PROPAGATES and case in NON_FINITE else "NaN"), out
  with jax.enable_x64(True):
    kind64, out64 = _attempt(lambda: call(_float64(b)))
  if kind64 != "value" or not _close(out, out64, 0.0 if name in SCALED else 5e-5):
    return "wrong", (out, out64)
  return "value", out


@functools.cache
def _jitted(name: str, c: int):
  """One jitted call per (callable, class count): the cases of one shape share it."""
  return jax.jit(lambda z, z2, y, mask: CALLS[name](Batch(z, z2, y, mask, c)))


def jit_outcome(name: str, case: str, eager: tuple[str, object]) -> str:
  """Under jit: 'error' at trace time (ncjax's), 'internal error', 'value' (the eager
  value), 'differs' (not the eager value); where eager refused the values, 'NaN' (the
  output says so) or 'finite' (silent: only checkify sees it)."""
  b = CASES[case](BASE)
  kind, out = _attempt(lambda: _jitted(name, b.c)(b.z, b.z2, b.y, b.mask))
  if kind != "value":
    return kind
  if eager[0] == "value":
    return "value" if _close(out, eager[1], 0.0 if name in SCALED else 5e-5) else "differs"
  return "finite" if all(np.all(np.isfinite(x)) for x in out) else "NaN"


# Jitted on these cases only in the test suite (each case is a new compilation); the
# script runs every case under jit.
# shard_rows places host data on devices: not traceable, so the mesh calls are eager only.
HOST_ONLY = ("class_stats(mesh=)", "matrix_entropy(mesh=)")
# (base, NaN, Inf, zero row, scales and offsets share one compiled program per callable.)
JIT_CASES = ("base", "NaN", "Inf", "zero row", "scale 1e-30", "offset 1e5", "rank 1",
             "one class")


# The fast tier (`-m "not slow"`) meets every callable eagerly on these cases (the module
# tests jit them); the other cases and the jitted sweep run in the full suite (.ci/run).
FAST_EAGER = ("base", "NaN")
FAST_JIT = ()


def _tiered(pairs, fast):
  return [pytest.param(n, c, marks=() if c in fast else pytest.mark.slow) for n, c in pairs]


@pytest.mark.parametrize("name, case", _tiered([(n, c) for n in CALLS for c in cases_of(n)],
                                               FAST_EAGER))
def test_eager_call_gives_own_error_or_float64_value(name, case):
  kind, detail = eager_outcome(name, case)
  assert kind in ("error", "value", "propagated"), f"{name} on {case}: {kind}: {detail}"


def test_the_sweep_can_fail():
  """The classifier itself: a JAX-internal error, a NaN and a wrong value are caught."""
  assert _attempt(lambda: jnp.ones(3) @ jnp.ones(4))[0] == "internal error"
  assert _attempt(lambda: ncjax.nc1(None))[0] == "error"
  assert not _close([np.ones(3)], [np.ones(3) * 1.01])
  assert _close([np.ones(3)], [np.ones(3) * 1.0001])


@pytest.mark.parametrize("name, case", _tiered([(n, c) for n in CALLS if n not in HOST_ONLY
                                                 for c in JIT_CASES if c in cases_of(n)],
                                                FAST_JIT))
def test_jitted_call_errors_at_trace_time_or_equals_eager(name, case):
  eager = eager_outcome(name, case)
  kind = jit_outcome(name, case, eager)
  assert kind not in ("internal error", "differs"), f"{name} on {case} under jit: {kind}"
  if eager[0] == "value":
    assert kind == "value"


def test_every_public_callable_has_a_runnable_example():
  """Each callable of ``ncjax.__all__`` and of the public modules shows its call."""
  missing = []
  for module in (ncjax, ncjax.baselines, ncjax.losses, ncjax.optim, ncjax.progress,
                 ncjax.spectral, ncjax.sharding, ncjax.kernels, ncjax.stats):
    for name in module.__all__:
      obj = getattr(module, name)
      if callable(obj) and ">>>" not in (obj.__doc__ or ""):
        missing.append(f"{module.__name__}.{name}")
  assert not missing, missing


def main() -> None:
  """Prints, per call, the counts of eager and jit outcomes over every case."""
  table = collections.Counter()
  for name in CALLS:
    for case in cases_of(name):
      eager = eager_outcome(name, case)
      table["eager", eager[0]] += 1
      if name not in HOST_ONLY:
        table["jit", jit_outcome(name, case, eager)] += 1
      if eager[0] not in ("error", "value", "propagated"):
        print(f"{name} / {case}: {eager[0]}: {str(eager[1])[:200]}")
  print(f"{len(CALLS)} callables x {len(CASES)} cases")
  for mode in ("eager", "jit"):
    print(mode, {k: v for (m, k), v in sorted(table.items()) if m == mode})


if __name__ == "__main__":
  main()
