"""Sample meshes: features sharded over their rows, matrix stacks over devices.

The metrics take the mesh as ``mesh=``: given rows sharded by :func:`shard_rows`, each
device reduces its rows to small statistics (d x d covariances, the Kronecker moment,
ClassStats) and one ``psum`` combines them; the metric is then taken from the reduced
statistics, replicated on every device. The same code runs on one device, on several,
and across hosts after ``jax.distributed.initialize()`` (the mesh spans
``jax.devices()``; each process passes its own rows to :func:`shard_rows`).

    mesh = ncjax.sharding.sample_mesh()
    (z1, z2), mask = ncjax.sharding.shard_rows(mesh, z1, z2)   # pads n, masks the padding
    ncjax.mir(z1, z2, mask=mask, mesh=mesh)

The pairwise collapse metrics (CDNV, NC2 angles, GNC2) split the class axis over the same
mesh instead: :func:`shard_classes` places statistics that way, so that no device holds
all C class means (docs/scale.md).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ncjax import _validation as check
from ncjax import spectral
from ncjax._tiling import MEMBERS, SAMPLES, check_mesh
from ncjax.stats import ClassStats

__all__ = ["SAMPLES", "MEMBERS", "sample_mesh", "row_sharding", "shard_rows", "shard_classes", "eigvalsh"]


def sample_mesh(devices=None) -> Mesh:
  """A 1-D mesh (axis ``"samples"``) over ``devices`` (default: every device, all hosts).

  Args:
    devices: ``jax.Device`` objects (e.g. ``jax.devices()[:4]``), or one ``jax.Device``.
  Raises:
    ValueError: ``devices`` is empty, names a device twice, or holds something other
      than a ``jax.Device`` (an InputTypeError, also a TypeError).

  >>> import jax
  >>> sample_mesh(jax.devices()[:1]).axis_names
  ('samples',)
  """
  if devices is None:
    devices = jax.devices()
  elif isinstance(devices, jax.Device):
    devices = [devices]
  elif isinstance(devices, (str, bytes)) or not np.iterable(devices):
    raise check.InputTypeError(f"devices must be jax.Device objects (jax.devices()), got "
                               f"{type(devices).__name__}.")
  devices = list(devices)
  others = sorted({type(d).__name__ for d in devices if not isinstance(d, jax.Device)})
  if others:
    raise check.InputTypeError(f"devices must be jax.Device objects (jax.devices()), got {others}.")
  if not devices:
    raise ValueError("devices must name at least one device, got none.")
  if len(set(devices)) != len(devices):
    raise ValueError(f"devices must be distinct, got {devices}.")
  return Mesh(np.asarray(devices), (SAMPLES,))


def row_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over the mesh, the rest replicated.

  >>> import jax
  >>> row_sharding(sample_mesh(jax.devices()[:1])).spec == jax.P("samples")
  True
  """
  check_mesh(mesh, required=True)
  return NamedSharding(mesh, PartitionSpec(SAMPLES))


def shard_rows(mesh: Mesh, *arrays, mask=None) -> tuple[tuple[jax.Array, ...], jax.Array]:
  """Pads the arrays' rows with zeros and shards them over the mesh.

  One process: the arrays are all the rows. Several (after
  ``jax.distributed.initialize()``): each process passes its own rows (any number, also
  0), every process must call this, and the global arrays hold every process's rows
  (process 0's first), each process's share padded to the same multiple of its devices.

  Args:
    mesh: a sample mesh (:func:`sample_mesh`).
    arrays: (n, ...) each.
    mask: optional (n,) bool.
  Returns:
    The sharded (n', ...) arrays and the (n',) mask (False on padding), n' >= n (the
    total over processes).

  >>> import jax, numpy as np
  >>> mesh = sample_mesh(jax.devices()[:1])
  >>> (z,), mask = shard_rows(mesh, np.ones((3, 2), np.float32))
  >>> z.shape, mask.tolist()
  ((3, 2), [True, True, True])
  """
  check_mesh(mesh, required=True)
  if not arrays:
    raise ValueError("shard_rows needs at least one array to shard.")
  n = len(arrays[0])
  if any(len(a) != n for a in arrays):
    raise ValueError(f"arrays must share their number of rows, got {[len(a) for a in arrays]}.")
  mask = np.ones(n, bool) if mask is None else np.asarray(mask)
  if mask.shape != (n,) or mask.dtype != bool:
    raise ValueError(f"mask must be ({n},) bool, got shape {mask.shape} dtype {mask.dtype}.")
  local = mesh.size // jax.process_count()  # devices of this process in the mesh
  most = n
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    most = int(np.max(multihost_utils.process_allgather(np.asarray(n))))
  rows = -(-most // local) * local if most else local
  padded = [np.pad(np.asarray(a), [(0, rows - n)] + [(0, 0)] * (np.ndim(a) - 1))
            for a in (*arrays, mask)]
  sharding = row_sharding(mesh)
  *sharded, mask = [jax.make_array_from_process_local_data(sharding, a) for a in padded]
  return tuple(sharded), mask


def shard_classes(mesh: Mesh, stats: ClassStats) -> ClassStats:
  """``stats`` with their class axis (counts (C,), means (C, d), spreads (C,)) split over
  the mesh and the rest replicated: what the pairwise metrics read with ``mesh=``
  without any device holding all C means. C must be a multiple of the mesh size (pad
  with absent classes otherwise: they drop out of every metric).

  >>> import jax, jax.numpy as jnp, ncjax
  >>> stats = ncjax.class_stats(jnp.eye(2), jnp.arange(2), num_classes=2)
  >>> shard_classes(sample_mesh(jax.devices()[:1]), stats).scaled_means.sharding.spec == jax.P(
  ...     "samples")
  True
  """
  check_mesh(mesh, required=True)
  if not isinstance(stats, ClassStats):
    raise check.InputTypeError(f"stats must be a ClassStats, got {type(stats).__name__}.")
  if stats.num_classes % mesh.size:
    raise ValueError(f"num_classes {stats.num_classes} does not split over the mesh's "
                     f"{mesh.size} devices: pad the statistics with absent classes.")
  split, whole = row_sharding(mesh), NamedSharding(mesh, PartitionSpec())
  classes = {"counts", "scaled_means", "scaled_spread"}  # the fields with a class axis
  return ClassStats(**{f.name: jax.device_put(getattr(stats, f.name),
                                              split if f.name in classes else whole)
                       for f in dataclasses.fields(stats)})


def eigvalsh(stack: jax.Array, mesh: Mesh) -> jax.Array:
  """Eigenvalues of a stack of T symmetric PSD matrices (T, m, m), each device solving
  its share (T padded to a multiple of the mesh size). Returns (T, m), clamped at 0.

  The stack must be real floating point (float16/bfloat16 are solved in float32) and,
  checked eagerly, finite: integer, boolean and complex stacks raise.

  >>> import jax, jax.numpy as jnp
  >>> eigvalsh(2.0 * jnp.eye(2)[None], sample_mesh(jax.devices()[:1])).tolist()
  [[2.0, 2.0]]
  """
  check_mesh(mesh, required=True)
  stack = check.real_floating(stack, "stack")
  if stack.ndim != 3 or stack.shape[1] != stack.shape[2]:
    raise ValueError(f"stack must be (T, m, m), got shape {stack.shape}.")
  check.finite(stack, "stack")
  t, m = stack.shape[0], stack.shape[-1]
  pad = -t % mesh.size
  eye = jnp.broadcast_to(jnp.eye(m, dtype=stack.dtype), (pad, m, m))
  padded = jax.device_put(jnp.concatenate([stack, eye]), row_sharding(mesh))
  solve = jax.shard_map(spectral.psd_eigvalsh_core, mesh=mesh, in_specs=PartitionSpec(SAMPLES),
                        out_specs=PartitionSpec(SAMPLES))
  return solve(padded)[:t]
