"""The trainer's device mesh, over every device of every process: axes ``members`` x ``data``.

States carry a leading member axis (seeds x swept values) and are sharded over
``members``, replicated over ``data`` (data parallel); training batches (M, B, ...) are
sharded over both, batches shared by every member (B, ...) over ``data``. One process
or several (after ``jax.distributed.initialize``) run the same code; one device is the
mesh of size 1.

Each process builds only its own slices of a global batch (:func:`assemble`), reads host
values through :func:`fetch` (never a non-addressable buffer), and agrees with the
others through :func:`barrier` and :func:`any_process`: collectives that every process
must call, never behind ``if is_writer()``.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from ncjax.sharding import MEMBERS, SAMPLES
from ncjax.train.config import member_seeds


def make_mesh(config: ml_collections.ConfigDict) -> Mesh:
  """The (members, data) mesh of ``config.mesh``: ``mesh.members`` device groups, each of
  ``mesh.data`` devices (None: every device of every process, split into the groups).

  Raises:
    ValueError: the split does not fit the devices, or the members do not split evenly.
  """
  devices = jax.devices()
  groups, per_group = config.mesh.members, config.mesh.data
  if per_group is None:
    if len(devices) % groups:
      raise ValueError(f"config.mesh.members = {groups} must divide the {len(devices)} "
                       "devices.")
    per_group = len(devices) // groups
  used = groups * per_group
  if used > len(devices) or (jax.process_count() > 1 and used != len(devices)):
    raise ValueError(f"config.mesh.members x config.mesh.data = {groups} x {per_group} must "
                     f"{'be' if jax.process_count() > 1 else 'be at most'} the "
                     f"{len(devices)} devices of {jax.process_count()} process(es).")
  members = len(member_seeds(config))
  if members % groups:
    raise ValueError(f"config.mesh.members = {groups} must divide the {members} members "
                     "(num_seeds x len(sweep_values)).")
  return jax.make_mesh((groups, per_group), (MEMBERS, SAMPLES), devices=devices[:used],
                       axis_types=(AxisType.Auto, AxisType.Auto))


def serialized(fn: Callable, mesh: Mesh) -> Callable:
  """``fn`` (a jitted program with collectives over ``mesh``) that, on a CPU mesh of
  several devices, waits for its result before returning.

  XLA:CPU (jaxlib 0.10.2) deadlocks when two executions of a program with collectives
  overlap in one process (an in-process all-reduce whose rendezvous never completes,
  then an abort after 40 s): asynchronous dispatch of consecutive train steps on 2-8
  fake CPU devices does it. Accelerators keep asynchronous dispatch. ``fn.jitted``:
  the wrapped function (e.g. to ``.lower`` it).
  """
  if mesh.size == 1 or mesh.devices.flat[0].platform != "cpu":
    wrapped: Any = functools.partial(fn)
  else:
    wrapped = functools.wraps(fn)(lambda *args: jax.block_until_ready(fn(*args)))
  wrapped.jitted = fn
  return wrapped


def members_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (member) axis over ``members``, replicated over ``data``: states."""
  return NamedSharding(mesh, PartitionSpec(MEMBERS))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """(M, B, ...) over ``members`` x ``data``: each member's own batch."""
  return NamedSharding(mesh, PartitionSpec(MEMBERS, SAMPLES))


def shared_sharding(mesh: Mesh) -> NamedSharding:
  """(B, ...) over ``data``, replicated over ``members``: a batch every member sees."""
  return NamedSharding(mesh, PartitionSpec(SAMPLES))


def replicated(mesh: Mesh) -> NamedSharding:
  """On every device: what every process reads back (metrics, losses)."""
  return NamedSharding(mesh, PartitionSpec())


def data_size(mesh: Mesh) -> int:
  return mesh.shape[SAMPLES]


def padded_size(n: int, mesh: Mesh) -> int:
  """``n`` rounded up to a multiple of the samples axis (rows of a masked, sharded batch)."""
  return -(-n // data_size(mesh)) * data_size(mesh)


def assemble(sharding: NamedSharding, lead_shape: tuple[int, ...], load: Callable):
  """A pytree of global arrays of which this process builds only its own slices.

  Args:
    sharding: the arrays' sharding; its spec names the leading ``len(lead_shape)`` axes.
    lead_shape: the global sizes of those leading axes, e.g. (M, B).
    load: ``load(index) -> pytree of NumPy arrays`` for ``index``, a tuple of slices of
      the leading axes; called once per distinct slice held by this process's devices.
  Returns:
    The pytree of ``load``, each leaf a global array of shape ``lead_shape + trailing``.
  """
  indices = sharding.addressable_devices_indices_map(lead_shape)
  key = lambda index: tuple(s.indices(n)[:2] for s, n in zip(index, lead_shape, strict=True))
  parts: dict = {}
  for index in indices.values():
    parts.setdefault(key(index), index)
  parts = {k: load(index) for k, index in parts.items()}
  devices = list(indices)
  treedef = jax.tree.structure(next(iter(parts.values())))
  leaves = [jax.tree.leaves(parts[key(indices[d])]) for d in devices]

  def build(i: int) -> jax.Array:
    trailing = np.shape(leaves[0][i])[len(lead_shape):]
    shards = [jax.device_put(np.asarray(part[i]), d) for part, d in zip(leaves, devices, strict=True)]
    return jax.make_array_from_single_device_arrays((*lead_shape, *trailing), sharding, shards)

  return jax.tree.unflatten(treedef, [build(i) for i in range(len(leaves[0]))])


def put(tree, sharding: NamedSharding):
  """Host arrays that every process holds in full (the same values), placed on
  ``sharding``: each process transfers only its slices."""
  if not jax.tree.leaves(tree):
    return tree
  lead = len(sharding.spec)
  shape = np.shape(jax.tree.leaves(tree)[0])[:lead]
  return assemble(sharding, shape, lambda index: jax.tree.map(lambda x: np.asarray(x)[index],
                                                               tree))


def fetch(tree):
  """Host (NumPy) values of a pytree of global arrays, on every process (a collective
  when they span several processes). Waits in ``block_until_ready`` first, which
  releases the GIL (the copy's own wait does not), so a watchdog thread can run."""
  tree = jax.block_until_ready(tree)
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def is_writer() -> bool:
  """Process 0 alone writes logs, figures and the progress bar."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Every process waits here until all have arrived (nothing to do with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
  """True on every process when ``flag`` is True on any (e.g. a Ctrl-C on one host)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


class Prefetch:
  """``make(step)`` for step = start, start + 1, ..., computed ``depth`` steps ahead on
  a background thread (the host builds the next batch while the devices run this one);
  ``depth`` 0: in the caller's thread, for batches made by a jitted program (two threads
  must never dispatch collectives at once). ``step``: the step of the next batch."""

  def __init__(self, make: Callable[[int], object], start: int, depth: int):
    self.make, self.step, self.depth = make, start, depth
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ncjax-prefetch"
                                                       ) if depth else None
    self._queue = [self._pool.submit(make, start + i) for i in range(depth)] if self._pool else []

  def __iter__(self):
    return self

  def __next__(self):
    if self._pool is not None:
      batch = self._queue.pop(0).result()
      self._queue.append(self._pool.submit(self.make, self.step + self.depth))
    else:
      batch = self.make(self.step)
    self.step += 1
    return batch

  def close(self) -> None:
    for future in self._queue:
      future.cancel()
    if self._pool is not None:
      self._pool.shutdown(wait=True)
