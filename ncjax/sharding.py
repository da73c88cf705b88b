"""Metrics over a device mesh: features sharded over samples, matrix stacks over devices.

Sample-sharded metrics reduce each device's rows to small statistics (d x d covariances,
the Kronecker moment, ClassStats) and combine them with one ``psum``; the metric is then
taken from the reduced statistics, replicated on every device. The same code runs on one
device, on several, and across hosts after ``jax.distributed.initialize()`` (the mesh
spans ``jax.devices()``; each process passes its own rows to :func:`shard_rows`).

    mesh = ncjax.sharding.sample_mesh()
    (z1, z2), mask = ncjax.sharding.shard_rows(mesh, z1, z2)   # pads n, masks the padding
    ncjax.sharding.mir(z1, z2, mesh, mask=mask)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ncjax import _validation as check
from ncjax import info, kernels, spectral
from ncjax.stats import ClassStats

AXIS = "samples"


def sample_mesh(devices=None) -> Mesh:
  """A 1-D mesh (axis ``"samples"``) over ``devices`` (default: every device, all hosts).

  Raises:
    ValueError: ``devices`` is empty or names a device twice.
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices must name at least one device, got none.")
  if len(set(devices)) != len(devices):
    raise ValueError(f"devices must be distinct, got {devices}.")
  return Mesh(np.asarray(devices), (AXIS,))


def row_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis split over the mesh, the rest replicated."""
  return NamedSharding(mesh, PartitionSpec(AXIS))


def shard_rows(mesh: Mesh, *arrays, mask=None) -> tuple[tuple[jax.Array, ...], jax.Array]:
  """Pads the arrays' rows with zeros and shards them over the mesh.

  One process: the arrays are all the rows. Several (after
  ``jax.distributed.initialize()``): each process passes its own rows (any number, also
  0), every process must call this, and the global arrays hold every process's rows
  (process 0's first), each process's share padded to the same multiple of its devices.

  Args:
    arrays: (n, ...) each; mask: optional (n,) bool.
  Returns:
    The sharded (n', ...) arrays and the (n',) mask (False on padding), n' >= n (the
    total over processes).
  """
  n = len(arrays[0])
  mask = np.ones(n, bool) if mask is None else np.asarray(mask, bool)
  local = mesh.size // jax.process_count()  # devices of this process in the mesh
  most = n
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    most = int(np.max(multihost_utils.process_allgather(np.asarray(n))))
  rows = -(-most // local) * local if most else local
  padded = [np.pad(np.asarray(a), [(0, rows - n)] + [(0, 0)] * (np.ndim(a) - 1))
            for a in (*arrays, mask)]
  sharding = row_sharding(mesh)
  *arrays, mask = [jax.make_array_from_process_local_data(sharding, a) for a in padded]
  return tuple(arrays), mask


def _reduce_rows(fn, mesh: Mesh, *args):
  """``psum`` over the mesh of ``fn`` applied to each device's rows of ``args``."""
  local = lambda *a: jax.tree.map(lambda x: jax.lax.psum(x, AXIS), fn(*a))
  return jax.shard_map(local, mesh=mesh, in_specs=PartitionSpec(AXIS),
                       out_specs=PartitionSpec())(*args)


def _moments(mesh, mask, *zs, joint=False):
  """Entropies from sample-sharded moments of the normalised rows of each z: Zn^T Zn,
  and with ``joint`` the Kronecker moment of the pair (never an n x n matrix)."""

  def local(mask, *zs):
    zns = [kernels.normalize_rows(z, mask) for z in zs]
    out = [kernels.matmul(zn.T, zn) for zn in zns]
    if joint:
      chunk = max(1, min(mask.shape[0], info.KRON_BLOCK // (zs[0].shape[1] * zs[1].shape[1])))
      out.append(kernels.hadamard_moment(*zns, chunk))
    return out

  return tuple(map(spectral.psd_entropy, _reduce_rows(local, mesh, mask, *zs)))


def matrix_entropy(z: jax.Array, mesh: Mesh, *, mask: jax.Array | None = None) -> jax.Array:
  """:func:`ncjax.matrix_entropy` of row-sharded features (n, d) via a psum'd d x d
  covariance; ``mask`` (n,) marks real rows (see :func:`shard_rows`)."""
  (z,), mask = check.feature_inputs(mask, z=z)
  return _moments(mesh, mask, z)[0]


def entropies(z1, z2, mesh: Mesh, *, mask=None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(H(G(z1)), H(G(z2)), H(G(z1) o G(z2))) of row-sharded (n, d1), (n, d2) features,
  from psum'd d1 x d1, d2 x d2 and (d1 d2) x (d1 d2) moments."""
  (z1, z2), mask = check.feature_inputs(mask, z1=z1, z2=z2)
  return _moments(mesh, mask, z1, z2, joint=True)


def mutual_information(z1, z2, mesh: Mesh, *, mask=None) -> jax.Array:
  h1, h2, h12 = entropies(z1, z2, mesh, mask=mask)
  return h1 + h2 - h12


def mir(z1, z2, mesh: Mesh, *, mask=None) -> jax.Array:
  return info.mir_from_entropies(*entropies(z1, z2, mesh, mask=mask))


def hdr(z1, z2, mesh: Mesh, *, mask=None) -> jax.Array:
  (z1, z2), mask = check.feature_inputs(mask, z1=z1, z2=z2)
  return info.hdr_from_entropies(*_moments(mesh, mask, z1, z2))


def class_stats(features, labels, mesh: Mesh, *, num_classes: int, mask=None) -> ClassStats:
  """:class:`ClassStats` of row-sharded features and labels: one ``from_batch`` per device,
  merged with :meth:`ClassStats.psum`; feed it to ``ncjax.nc1``, ``ncjax.vci``,
  ``ncjax.collapse_metrics_from_stats``, ... Validated like ``ncjax.class_stats``."""
  num_classes = check.num_classes(num_classes)
  features = check.features(features, "features", min_rows=1)
  labels = check.labels(labels, features.shape[0], num_classes)
  mask = check.as_mask(mask, features.shape[0])
  check.finite(features, "features", mask)
  local = lambda h, y, m: ClassStats._from_batch(h, y, num_classes, m).psum(AXIS)
  return jax.shard_map(local, mesh=mesh, in_specs=PartitionSpec(AXIS),
                       out_specs=PartitionSpec())(features, labels, mask)


def sum_over_blocks(fn, blocks: jax.Array, mesh: Mesh | None = None):
  """``sum_b fn(blocks[b])`` for a pytree-valued ``fn``, one block at a time
  (``lax.map``). With a mesh the blocks (B a multiple of the mesh size) are split across
  its devices and the partial sums ``psum``'d: how the tiled pairwise metrics of
  ``ncjax.collapse`` spread their class tiles over devices."""
  local = lambda b: jax.tree.map(lambda x: jnp.sum(x, axis=0), jax.lax.map(fn, b))
  if mesh is None:
    return local(blocks)
  if blocks.shape[0] % mesh.size:
    raise ValueError(f"{blocks.shape[0]} blocks do not split over {mesh.size} devices.")
  return _reduce_rows(local, mesh, blocks)


def eigvalsh(stack: jax.Array, mesh: Mesh) -> jax.Array:
  """Eigenvalues of a stack of T symmetric PSD matrices (T, m, m), each device solving
  its share (T padded to a multiple of the mesh size). Returns (T, m), clamped at 0."""
  t, m = stack.shape[0], stack.shape[-1]
  pad = -t % mesh.size
  eye = jnp.broadcast_to(jnp.eye(m, dtype=stack.dtype), (pad, m, m))
  padded = jax.device_put(jnp.concatenate([stack, eye]), row_sharding(mesh))
  solve = jax.shard_map(spectral.psd_eigvalsh, mesh=mesh, in_specs=PartitionSpec(AXIS),
                        out_specs=PartitionSpec(AXIS))
  return solve(padded)[:t]
