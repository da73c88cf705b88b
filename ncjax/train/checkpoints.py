"""Orbax trajectory checkpoints: snapshots kept forever on a schedule fixed when the run
starts, plus resume points every ``checkpoint_every`` steps of which the latest ``keep``
survive. Each checkpoint holds the full TrainState (``state``) and, as JSON (``meta``),
that step's metrics and a checksum of the state, verified on every restore. The data
position is the step itself (the tasks' batches are a function of seed and step).

Several processes: every process calls every save and restore on the shared run
directory (Orbax coordinates them; each writes the shards it holds), and a restore
lands on the shardings of the target, so a run resumes on another device count."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ncjax.train import meshes

policies = ocp.checkpoint_managers


class CorruptCheckpoint(RuntimeError):
  """A checkpoint that cannot be restored or whose checksum does not match."""


class ModelMismatch(ValueError):
  """The checkpoints hold another model (parameter tree or shapes) than the config builds."""


class _QuietReadOnly(logging.Filter):
  """Drops Orbax's "Given directory is read only" warning: reading is all a reader does."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Given directory is read only")


logging.getLogger("absl").addFilter(_QuietReadOnly())


def snapshot_steps(steps: int, num_snapshots: int) -> list[int]:
  """Step 0 and ``num_snapshots`` log-spaced steps in [1, steps] (dense early)."""
  logspaced = np.geomspace(1, steps, num_snapshots) if num_snapshots else np.zeros(0)
  return sorted({0, steps, *np.round(logspaced).astype(int).tolist()})


def directory(workdir: str) -> str:
  return os.path.abspath(os.path.join(workdir, "checkpoints"))


def saved_steps(workdir: str) -> list[int]:
  """Sorted steps of the checkpoint folders under ``workdir`` (none: [])."""
  folder = directory(workdir)
  return sorted(int(s) for s in os.listdir(folder) if s.isdigit()) if os.path.isdir(folder) else []


def manager(workdir: str, trajectory: list[int], checkpoint_every: int,
            keep: int) -> ocp.CheckpointManager:
  """A CheckpointManager under ``workdir/checkpoints`` keeping the ``trajectory`` steps
  forever and the latest ``keep`` resume points."""
  options = ocp.CheckpointManagerOptions(
      save_decision_policy=policies.AnySavePolicy([
          policies.SpecificStepsPolicy(trajectory),
          policies.FixedIntervalPolicy(checkpoint_every),
      ]),
      preservation_policy=policies.AnyPreservationPolicy([
          policies.CustomSteps(trajectory),
          policies.LatestN(keep),
      ]),
      cleanup_tmp_directories=True,
  )
  return ocp.CheckpointManager(directory(workdir), options=options)


def reader(workdir: str) -> ocp.CheckpointManager:
  """A read-only view of the checkpoints of ``workdir`` (deletes nothing)."""
  if not os.path.isdir(directory(workdir)):
    raise FileNotFoundError(f"no checkpoints under {workdir}/checkpoints")
  return ocp.CheckpointManager(directory(workdir),
                               options=ocp.CheckpointManagerOptions(
                                   read_only=True, save_interval_steps=0, create=False),
                               item_handlers={"state": ocp.StandardCheckpointHandler(),
                                              "meta": ocp.JsonCheckpointHandler()})


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """{"params/Dense_0/kernel": shape} of every array of ``tree`` (a state or its metadata)."""
  name = lambda k: str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
  return {"/".join(name(k) for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def check_model(workdir: str, like) -> None:
  """Compares the parameter tree and shapes of the newest checkpoint whose metadata
  reads under ``workdir`` (none: nothing to compare) with ``like`` (a state or its
  ``jax.eval_shape``); reads metadata only, moves nothing.

  Raises:
    ModelMismatch: naming the first differing path (parameters first) and both shapes.
  """
  if not saved_steps(workdir):
    return
  mngr = reader(workdir)
  try:
    for step in sorted(mngr.all_steps(), reverse=True):
      try:
        saved = _shapes(mngr.item_metadata(step)["state"])
      except Exception:  # noqa: BLE001 - unreadable: a corrupt checkpoint, judged on restore
        continue
      here = _shapes(like)
      differ = sorted((k for k in saved.keys() | here.keys() if saved.get(k) != here.get(k)),
                      key=lambda k: (not k.startswith("params/"), k))
      if differ:
        k = differ[0]
        raise ModelMismatch(
            f"checkpoint {step} in {workdir} holds another model than the config builds: "
            f"{k} is {saved.get(k, 'absent')} there, {here.get(k, 'absent')} here "
            f"({len(differ)} arrays differ); nothing was moved. Use another --workdir, or "
            "--overwrite to start afresh.")
      return
  finally:
    mngr.close()


def quarantine(workdir: str, step: int) -> str:
  """Moves checkpoint ``step`` to ``workdir/corrupt/<step>`` (kept for inspection, out of
  Orbax's way, so the step can be saved again); returns the new path."""
  target = os.path.join(workdir, "corrupt", str(step))
  os.makedirs(os.path.dirname(target), exist_ok=True)
  if os.path.exists(target):
    target = f"{target}.{len(os.listdir(os.path.dirname(target)))}"
  os.replace(os.path.join(directory(workdir), str(step)), target)
  return target


def checksum(state) -> str:
  """BLAKE2b of every array of ``state`` (global values, in tree order: the same on
  every process and for every sharding)."""
  digest = hashlib.blake2b(digest_size=16)
  for leaf in jax.tree.leaves(meshes.fetch(state)):
    leaf = np.asarray(leaf)
    digest.update(str((leaf.shape, leaf.dtype.str)).encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def save(mngr: ocp.CheckpointManager, step: int, state, metrics: dict,
         force: bool = False) -> None:
  meta = {"metrics": metrics, "checksum": checksum(state)}
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          meta=ocp.args.JsonSave(meta)), force=force)


def _corrupt(step: int, e: Exception) -> CorruptCheckpoint:
  first = str(e).splitlines()[0][:120] if str(e) else ""
  return CorruptCheckpoint(f"checkpoint {step} is corrupt: {type(e).__name__}: {first}")


def restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  """The JSON saved with ``step`` (metrics, checksum)."""
  try:
    return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  except Exception as e:  # noqa: BLE001 - any failure to read is a corrupt checkpoint
    raise _corrupt(step, e) from e


def restore(mngr: ocp.CheckpointManager, step: int, like) -> tuple[Any, dict]:
  """(state, meta) saved at ``step``, restored onto the structure/sharding of ``like``
  (a TrainState or its ``jax.eval_shape``) and checked against the saved checksum.

  Raises:
    CorruptCheckpoint: unreadable, or the data do not match the checksum.
  """
  meta = restore_meta(mngr, step)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  try:
    state = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract)))["state"]
  except Exception as e:  # noqa: BLE001
    raise _corrupt(step, e) from e
  if checksum(state) != meta.get("checksum"):
    raise CorruptCheckpoint(f"checkpoint {step} is corrupt: its data do not match the "
                            "checksum saved with it.")
  return state, meta


def restore_chunks(workdir: str, like, chunk_size: int, *, pad: bool = False):
  """Yields (steps, states stacked along the leading axis, (K * S, ...)) for chunks of
  at most ``chunk_size`` intact checkpoints, oldest first; a corrupt one is named on
  stderr and skipped. ``pad``: the last chunk repeats its final checkpoint up to
  ``chunk_size`` (one shape: one compile of what consumes it).

  Raises:
    FileNotFoundError: no checkpoints under ``workdir``.
    ModelMismatch: they hold another model than ``like``'s.
  """
  check_model(workdir, like)
  mngr = reader(workdir)
  try:
    steps = list(mngr.all_steps())
    if not steps:
      raise FileNotFoundError(f"no checkpoints under {workdir}/checkpoints")
    chunk_steps, chunk_states = [], []
    for i, step in enumerate(steps):
      try:
        chunk_states.append(meshes.fetch(restore(mngr, step, like)[0]))
        chunk_steps.append(step)
      except CorruptCheckpoint as e:
        print(f"ncjax: skipping step {step}: {e}", file=sys.stderr)
      if chunk_states and (len(chunk_states) == chunk_size or i == len(steps) - 1):
        if pad:
          chunk_states += chunk_states[-1:] * (chunk_size - len(chunk_states))
        yield chunk_steps, jax.tree.map(lambda *xs: np.concatenate(xs), *chunk_states)
        chunk_steps, chunk_states = [], []
  finally:
    mngr.close()


def restore_weights(workdir: str) -> dict:
  """``{"params", "batch_stats"}`` of the newest readable checkpoint of the run in
  ``workdir``, as saved (leading seed axis), without needing its model: the start of a
  fine-tune or a linear probe (``config.init_from``).

  Raises:
    FileNotFoundError: no readable checkpoint there.
  """
  mngr = reader(workdir)
  try:
    for step in sorted(mngr.all_steps(), reverse=True):
      try:
        state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
      except Exception:  # noqa: BLE001 - an unreadable checkpoint: try an older one
        continue
      state = meshes.fetch(state["state"])
      return {"params": state["params"], "batch_stats": state.get("batch_stats") or {}}
  finally:
    mngr.close()
  raise FileNotFoundError(f"no readable checkpoint under {workdir}/checkpoints")
