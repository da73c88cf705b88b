"""The tiling engines of the metrics: sums over blocks (optionally split over a mesh),
means over class pairs a row block at a time, and argmaxes over class tiles.

Internal to ncjax: the metrics in ``ncjax.collapse``, ``ncjax.ood`` and ``ncjax.info``
use these so that no C x C (or n x C) array exists beyond one block, and so that an
optional ``mesh`` splits the work over devices with one ``psum``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from ncjax import _validation as check
from ncjax.kernels import matmul, unit_rows

AXIS = "samples"  # the axis of a sample mesh (``ncjax.sharding.sample_mesh``)
TILE = 1024  # default tile_size: classes per block of a pairwise or argmax computation


def check_mesh(mesh, required: bool = False) -> Mesh | None:
  """None (unless ``required``), or a 1-D ``jax.sharding.Mesh`` whose axis is
  ``"samples"``."""
  if mesh is None and not required:
    return None
  if not isinstance(mesh, Mesh):
    raise check.InputTypeError(f"mesh must be a jax.sharding.Mesh (ncjax.sharding.sample_mesh()),"
                               f" got {type(mesh).__name__}.")
  if mesh.axis_names != (AXIS,):
    raise ValueError(f"mesh must have the one axis {AXIS!r} (ncjax.sharding.sample_mesh()), "
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
  specs = (PartitionSpec(AXIS),) * len(args) + (PartitionSpec(),) * len(shared)
  return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=PartitionSpec())(*args, *shared)


def reduce_rows(fn, mesh: Mesh, *args, shared: tuple = ()):
  """``psum`` over the mesh of ``fn`` applied to each device's rows of ``args`` (and
  ``shared``, see :func:`map_rows`)."""
  return map_rows(lambda *a: jax.tree.map(lambda x: jax.lax.psum(x, AXIS), fn(*a)), mesh, *args,
                  shared=shared)


def sum_over_blocks(fn, blocks: jax.Array, mesh: Mesh | None = None, shared: tuple = ()):
  """``sum_b fn(blocks[b], *shared)`` for a pytree-valued ``fn``, one block at a time
  (``lax.map``); with a mesh the blocks (a multiple of the mesh size) are split across
  its devices (``shared`` whole on each, see :func:`map_rows`) and the partial sums
  ``psum``'d."""
  def local(b, *shared):
    return jax.tree.map(lambda x: jnp.sum(x, axis=0), jax.lax.map(lambda i: fn(i, *shared), b))

  return local(blocks, *shared) if mesh is None else reduce_rows(local, mesh, blocks,
                                                                 shared=shared)


def pair_means(x: jax.Array, keep: jax.Array, terms, tile_size: int, mesh=None,
               operands: tuple = ()) -> dict:
  """Means over the ordered pairs (i, j), i != j, of kept rows of the (t, C) arrays
  ``terms(cos, rows, *operands)``: ``cos`` holds the cosines between rows ``rows`` (t,)
  of x (C, d) and every row; ``operands`` are the arrays ``terms`` reads (passed, not
  closed over: see :func:`map_rows`). Row blocks of t = min(tile_size, C) rows one at a
  time (with a mesh, split across its devices): at most a (t, C) block exists per
  device. Each pair counts twice, so means over i < j are the same.
  """
  c = x.shape[0]
  u = unit_rows(x, keep)
  t = min(check.static_int(tile_size, "tile_size"), c)
  devices = 1 if mesh is None else mesh.size
  tiles = -(-c // t)
  blocks = -(-tiles // devices) * devices  # whole blocks per device, padded past c
  index = jnp.arange(blocks * t).reshape(-1, t)

  def block(index, u, keep, *operands):
    rows = jnp.minimum(index, c - 1)
    pair = ((index < c) & keep[rows])[:, None] & keep[None, :] & (
        rows[:, None] != jnp.arange(c)[None, :])
    cos = jnp.where(pair, matmul(u[rows], u.T), 0.0)  # no inf off the pairs (diagonal)
    values = terms(cos, rows, *operands)
    return {k: jnp.sum(jnp.sum(jnp.where(pair, v, 0.0), axis=1)) for k, v in values.items()}

  sums = sum_over_blocks(block, index, mesh, shared=(u, keep, *operands))
  n = jnp.sum(keep)
  return {k: v / (n * (n - 1)) for k, v in sums.items()}


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
