"""The tiling engines of the metrics: sums over rows split over a mesh, means over class
pairs (the class axis split over a mesh, blocks passed round a ring), and argmaxes over
class tiles.

Internal to ncjax: the metrics in ``ncjax.collapse``, ``ncjax.ood`` and ``ncjax.info``
use these so that no C x C (or n x C) array exists beyond one block, and so that an
optional ``mesh`` splits the work over devices with one ``psum``.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from ncjax import _validation as check
from ncjax.kernels import matmul, unit_rows

# The two mesh axes of ncjax, named here once: rows of data (a sample mesh, the trainer's
# batch rows) and stacked models (the members of a vmapped sweep, snapshots of a run).
SAMPLES, MEMBERS = "samples", "members"
TILE = 1024  # default tile_size: classes per block of a pairwise or argmax computation
HIGHEST = jax.lax.Precision.HIGHEST  # default precision of the pair Grams: exact float32


def check_mesh(mesh, required: bool = False) -> Mesh | None:
  """None (unless ``required``), or a 1-D ``jax.sharding.Mesh`` whose axis is
  ``"samples"``."""
  if mesh is None and not required:
    return None
  if not isinstance(mesh, Mesh):
    raise check.InputTypeError(f"mesh must be a jax.sharding.Mesh (ncjax.sharding.sample_mesh()),"
                               f" got {type(mesh).__name__}.")
  if mesh.axis_names != (SAMPLES,):
    raise ValueError(f"mesh must have the one axis {SAMPLES!r} (ncjax.sharding.sample_mesh()), "
                     f"got axes {mesh.axis_names}.")
  return mesh


def map_rows(fn, mesh: Mesh, *args, shared: tuple = ()):
  """``fn(*rows, *shared)`` on each device's rows of ``args`` (each (n, ...), n a
  multiple of the mesh size) inside ``shard_map``; ``fn`` reduces over the mesh axis, so
  its outputs are replicated. The arrays of ``shared`` enter every device whole. An
  array ``fn`` reads must come as an argument, not from its closure: one placed on the
  mesh (e.g. statistics from ``class_stats(..., mesh=)``) cannot be indexed inside
  ``shard_map`` when closed over."""
  for a in args:
    if a.shape[0] % mesh.size:
      raise ValueError(f"{a.shape[0]} rows do not split over the mesh's {mesh.size} devices: "
                       "pad them with ncjax.sharding.shard_rows (it masks the padding).")
  specs = (PartitionSpec(SAMPLES),) * len(args) + (PartitionSpec(),) * len(shared)
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec())(*args, *shared)


def reduce_rows(fn, mesh: Mesh, *args, shared: tuple = ()):
  """``psum`` over the mesh of ``fn`` applied to each device's rows of ``args`` (and
  ``shared``, see :func:`map_rows`)."""
  return map_rows(lambda *a: jax.tree.map(lambda x: jax.lax.psum(x, SAMPLES), fn(*a)), mesh, *args,
                  shared=shared)


def pair_means(x: jax.Array, keep: jax.Array, terms, tile_size: int, mesh: Mesh | None = None,
               rows: tuple = (), shared: tuple = (), precision=HIGHEST) -> dict:
  """Means over the ordered pairs (i, j), i != j, of kept rows of x (C, d) of the (t, m)
  arrays ``terms(cos, a, b, *shared)``: ``cos`` the cosines between t rows i and m rows
  j, ``a`` and ``b`` the ``rows`` arrays (each (C,)) at those i (t,) and j (m,), and
  ``shared`` the arrays every pair reads whole. Each pair counts twice, so means over
  i < j are the same.

  The class axis is split over the mesh (none: one device): each of its P devices holds
  L = C / P rows (x, keep, ``rows``; sharded inputs stay sharded) and meets the others'
  in a ring (``ppermute``, P steps), taking its L x L pairs t = min(tile_size, L) rows
  at a time (``lax.map``); the sums are ``psum``'d. Memory per device is O(L d + t L)
  (docs/scale.md): no C x C and no C x d array. The pair Grams use ``precision``
  (:func:`pair_precision`).
  """
  c, count = x.shape[0], len(rows)
  devices = 1 if mesh is None else mesh.size
  t = check.static_int(tile_size, "tile_size")
  pad = -c % devices  # whole rows per device; the padding is not kept
  u, keep, *padded = (jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
                      for a in (unit_rows(x, keep), keep, *rows))

  def ring(u, keep, *args):
    rows, shared = args[:count], args[count:]
    size = u.shape[0]  # L
    ids = (0 if mesh is None else jax.lax.axis_index(SAMPLES)) * size + jnp.arange(size)
    tile = min(t, size)

    def block(visiting):
      """Sums of the terms over the pairs (this device's rows, ``visiting``'s rows)."""
      v_u, v_keep, v_ids, *v_rows = visiting

      def rows_from(start):
        i = start + jnp.arange(tile)
        ok, i = i < size, jnp.minimum(i, size - 1)
        pair = (ok & keep[i])[:, None] & v_keep[None, :] & (ids[i][:, None] != v_ids[None, :])
        cos = jnp.where(pair, jnp.matmul(u[i], v_u.T, precision=precision), 0.0)  # no inf off pairs
        values = terms(cos, tuple(r[i] for r in rows), tuple(v_rows), *shared)
        return {k: jnp.sum(jnp.where(pair, v, 0.0), axis=1) for k, v in values.items()}

      per_row = jax.lax.map(rows_from, jnp.arange(-(-size // tile)) * tile)
      return jax.tree.map(jnp.sum, per_row)

    visiting = (u, keep, ids, *rows)
    sums = block(visiting)
    for _ in range(devices - 1):  # pass the blocks round: device p meets p - 1, p - 2, ...
      visiting = jax.lax.ppermute(visiting, SAMPLES, [(p, (p + 1) % devices) for p in range(devices)])
      sums = jax.tree.map(jnp.add, sums, block(visiting))
    return sums if mesh is None else jax.lax.psum(sums, SAMPLES)

  if mesh is not None:
    specs = (PartitionSpec(SAMPLES),) * (2 + count) + (PartitionSpec(),) * len(shared)
    ring = jax.shard_map(ring, mesh=mesh, in_specs=specs, out_specs=PartitionSpec())
  sums = ring(u, keep, *padded, *shared)
  n = jnp.sum(keep)
  return {k: v / (n * (n - 1)) for k, v in sums.items()}


def pair_precision(precision):
  """``precision`` of the pair Gram products, checked: a ``jax.lax.Precision`` or a
  ``jax.lax.DotAlgorithmPreset`` (or either's name, e.g. ``"BF16_BF16_F32_X3"``). A
  preset the default backend does not compile (TF32 on CPU) falls back to ``HIGHEST``
  with a warning."""
  if isinstance(precision, str):
    name = precision.upper()
    if name in jax.lax.DotAlgorithmPreset.__members__:
      precision = jax.lax.DotAlgorithmPreset[name]
    elif name in jax.lax.Precision.__members__:
      precision = jax.lax.Precision[name]
  if isinstance(precision, jax.lax.Precision):
    return precision
  if not isinstance(precision, jax.lax.DotAlgorithmPreset):
    raise ValueError("precision must be a jax.lax.Precision or jax.lax.DotAlgorithmPreset (or "
                     f"its name, e.g. 'highest', 'BF16_BF16_F32_X3'), got {precision!r}.")
  platform = jax.default_backend()
  if not _compiles(precision, platform):
    warnings.warn(f"precision {precision.name} is not supported on {platform}: the pair Grams "
                  "use HIGHEST (exact float32) instead.", UserWarning, stacklevel=3)
    return HIGHEST
  return precision


@functools.cache
def _compiles(preset, platform: str) -> bool:
  """Whether ``platform`` (the default backend) compiles a float32 product with ``preset``."""
  del platform  # the cache key: the default backend
  x = jax.ShapeDtypeStruct((8, 8), jnp.float32)
  try:
    jax.jit(lambda a: jnp.matmul(a, a, precision=preset)).lower(x).compile()
  except Exception:  # noqa: BLE001 - any refusal, in lowering or by XLA, is unsupported
    return False
  return True


def argmax_over_classes(scores, num_classes: int, tile_size: int, n: int) -> tuple:
  """(n,) argmaxes over classes of ``scores(classes) -> k arrays (n, t)``, taken
  t = min(tile_size, C) classes at a time (``lax.scan``): at most (n, t) scores exist.
  Ties go to the lowest class index, as ``jnp.argmax``. Returns a tuple of k (n,) arrays.
  """
  t = min(check.static_int(tile_size, "tile_size"), num_classes)
  index = jnp.arange(-(-num_classes // t) * t).reshape(-1, t)

  def step(best, index):
    valid = index < num_classes
    values = scores(jnp.minimum(index, num_classes - 1))
    new = []
    for (value, arg), block in zip(best, values, strict=True):
      block = jnp.where(valid, block, -jnp.inf)
      top = jnp.max(block, axis=1)
      better = top > value
      new.append((jnp.where(better, top, value),
                  jnp.where(better, index[jnp.argmax(block, axis=1)], arg).astype(arg.dtype)))
    return tuple(new), None

  start = tuple((jnp.full((n,), -jnp.inf, block.dtype), jnp.zeros((n,), jnp.int32))
                for block in jax.eval_shape(scores, index[0]))
  best, _ = jax.lax.scan(step, start, index)
  return tuple(arg for _, arg in best)


def predicted_classes(features, head, bias, logits, tile_size: int) -> jax.Array:
  """(n,) the classifier's argmax: of the ``logits`` (n, C) when given, else of
  W h + b over class tiles (:func:`argmax_over_classes`)."""
  if logits is not None:
    return jnp.argmax(logits, axis=1).astype(jnp.int32)
  (predicted,) = argmax_over_classes(
      lambda classes: (matmul(features, head[classes].T) + bias[classes],),
      head.shape[0], tile_size, features.shape[0])
  return predicted
