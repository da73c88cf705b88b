"""Orbax trajectory checkpoints: snapshots kept forever on a log-spaced schedule, plus
resume points every ``checkpoint_every`` steps of which the latest ``keep`` survive.
Each checkpoint holds the full TrainState (``state``) and that step's metrics (``metrics``,
JSON)."""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp

policies = ocp.checkpoint_managers


def snapshot_steps(steps: int, num_snapshots: int) -> list[int]:
  """Step 0 and ``num_snapshots`` log-spaced steps in [1, steps] (dense early)."""
  logspaced = np.geomspace(1, steps, num_snapshots) if num_snapshots else []
  return sorted({0, steps, *np.round(logspaced).astype(int).tolist()})


def manager(
    workdir: str, steps: int, num_snapshots: int, checkpoint_every: int, keep: int
) -> ocp.CheckpointManager:
  """A CheckpointManager under ``workdir/checkpoints`` with the trajectory schedule."""
  trajectory = snapshot_steps(steps, num_snapshots)
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
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, metrics: dict, force=False) -> None:
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          metrics=ocp.args.JsonSave(metrics)), force=force)


def restore_state(mngr: ocp.CheckpointManager, step: int, like):
  """The TrainState saved at ``step``, restored onto the structure/sharding of ``like``."""
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  return mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract)))["state"]


def restore_all_params(workdir: str, like) -> tuple[list[int], list]:
  """Every step saved under ``workdir/checkpoints`` and its parameters as host arrays.

  ``like`` is a TrainState (or its ``jax.eval_shape``) giving the abstract restore
  target; one snapshot is on device at a time.
  """
  mngr = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")))
  try:
    steps = list(mngr.all_steps())
    if not steps:
      raise FileNotFoundError(f"no checkpoints under {workdir}/checkpoints")
    return steps, [jax.device_get(restore_state(mngr, s, like).params) for s in steps]
  finally:
    mngr.close()


def restore_metrics(mngr: ocp.CheckpointManager, step: int) -> dict:
  return mngr.restore(step, args=ocp.args.Composite(metrics=ocp.args.JsonRestore()))["metrics"]
