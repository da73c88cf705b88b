"""The training loop, for any task: resume, log, checkpoint, stop cleanly on NaN or Ctrl-C.

No plotting and no task knowledge here: the task (``ncjax.tasks``) supplies the model,
the loss, the data stream and the metrics pass; the caller draws the figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time

import jax
import numpy as np
import tqdm

from ncjax import keys
from ncjax.train import checkpoints, meshes, rundir, writers
from ncjax.train.config import member_seeds, swept_loss_options, validate
from ncjax.train.state import TrainState, create_states, make_loss, make_train_chunk, transplant
from ncjax.train.watchdog import Watchdog


class NonFiniteLoss(RuntimeError):
  """The training loss became NaN or Inf."""


def json_record(step: int, metrics: dict, members: int) -> dict:
  """A JSON record: scalars for one member, lists of per-member values for several."""
  values = meshes.fetch(metrics)
  per_seed = lambda v: float(v[0]) if members == 1 else [float(x) for x in v]
  return {"step": step, **{k: per_seed(v) for k, v in values.items()}}


def _check_finite(losses: np.ndarray, first_step: int, record: dict, mngr) -> None:
  """Raises NonFiniteLoss naming the first bad step (and seed) and the latest checkpoint.

  Bad: a non-finite loss of a train step since ``first_step`` (``losses``, (T, S)), or a
  non-finite loss of the parameters about to be logged and saved (``record``, whose
  ``train/loss`` is evaluated on the whole train split). This runs before every save, so
  every checkpoint holds parameters with a finite loss.
  """
  last_good = f"The last good checkpoint is step {mngr.latest_step()}."
  evaluated = np.concatenate([losses, np.reshape(record[keys.TRAIN_LOSS], (1, -1))])
  bad = np.argwhere(~np.isfinite(evaluated))  # (steps, S)
  if bad.size:
    step, seed = bad[0]
    raise NonFiniteLoss(f"training loss is {evaluated[step, seed]} at step {first_step + step} "
                        f"(seed index {seed}); stopping. {last_good}")


class _StopRequest:
  """Turns SIGINT into a flag checked between steps, so the state is never half-donated."""

  def __init__(self):
    self.requested = False

  def __enter__(self):
    self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def _handle(self, *_):
    self.requested = True

  def __exit__(self, *_):
    signal.signal(signal.SIGINT, self._previous)


def _resume(mngr, like: TrainState, workdir: str) -> tuple[int, TrainState]:
  """(step, state) of the newest intact checkpoint, restored onto the shardings of
  ``like``; (0, like) if none. Corrupt checkpoints are named on stderr and moved to
  ``workdir/corrupt/`` (by process 0; every process reaches the same verdict)."""
  result, moved = (0, like), False
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      result = (step, checkpoints.restore(mngr, step, like)[0])
      break
    except checkpoints.CorruptCheckpoint as e:
      moved = True
      if meshes.is_writer():
        path = checkpoints.quarantine(workdir, step)
        print(f"ncjax: {e} Moved to {path}; resuming from an earlier one.", file=sys.stderr)
  if moved:
    meshes.barrier("ncjax.quarantined")
    mngr.reload()
  return result


def _repaired_log(path: str, mngr, start: int) -> list[dict]:
  """Logged records before ``start``; steps missing from the log (a torn line) are
  restored from the metrics saved in their checkpoints."""
  records = {r["step"]: r for r in rundir.read_log(path) if r["step"] < start}
  for step in mngr.all_steps():
    if step < start and step not in records:
      with contextlib.suppress(checkpoints.CorruptCheckpoint):  # the log's gap stays
        records[step] = checkpoints.restore_meta(mngr, step)["metrics"]
  return [records[s] for s in sorted(records)]


def _chunk(step: int, config, saves, length: int) -> int:
  """Steps from ``step`` to the next one that is evaluated (a multiple of
  ``config.metrics_every``, one that ``saves``, the last), at most ``length``."""
  end = min(config.steps, (step // config.metrics_every + 1) * config.metrics_every,
            step + length)
  return next((s for s in range(step + 1, end) if saves(s)), end) - step


def train(task, workdir: str, *, overwrite: bool = False,
          allow_changes: tuple[str, ...] = ()) -> list[dict]:
  """Trains ``task`` (see ``ncjax.tasks``; its ``config``) in ``workdir``; resumes from
  the newest intact checkpoint there if any.

  Writes ``config.json``, ``schedule.json``, ``checkpoints/`` and, through
  :class:`ncjax.train.writers.MetricWriter`, ``metrics.jsonl``, ``losses.jsonl`` and
  TensorBoard event files (see ``ncjax.train.rundir`` for ``overwrite`` and
  ``allow_changes``). Without a terminal, progress is logged as lines on stderr. Returns
  the logged records.

  On the task's mesh (``task.mesh``, :mod:`ncjax.train.meshes`), from one process or
  several: every process runs this same function (the same jitted calls, every save and
  restore); process 0 alone writes the log and shows the progress bar.
  """
  began = time.monotonic()
  config = task.config
  validate(config)
  state = create_states(config, task.model, task.example_inputs, task.mesh)
  if config.init_from:  # checked before the run directory is touched
    state = transplant(state, checkpoints.restore_weights(config.init_from), task.mesh)
  schedule = rundir.prepare(config, workdir, overwrite, tuple(allow_changes), like=state)
  mngr = checkpoints.manager(workdir, schedule, config.checkpoint_every,
                             config.keep_checkpoints)
  start, state = _resume(mngr, state, workdir)
  log_path = os.path.join(workdir, "metrics.jsonl")
  records = _repaired_log(log_path, mngr, start)
  finished = [r for r in rundir.read_log(log_path) if r["step"] == start == config.steps]
  meshes.barrier("ncjax.log_read")  # before process 0 rewrites it
  if finished:  # nothing to train or log: e.g. a study run again
    mngr.close()
    return records + finished[:1]
  writer = meshes.is_writer()
  if writer:
    rundir.write_jsonl(log_path, records)

  feed = task.train_feed(start)  # the data position is the step
  length = min(config.metrics_every, task.chunk_limit or config.metrics_every)
  run_steps = make_train_chunk(make_loss(config), task.mesh, task.draw_batch, length,
                               train_mode=config.freeze != "backbone",
                               loss_options=swept_loss_options(config))
  members = len(member_seeds(config))
  saved_steps = set(mngr.all_steps())
  saves = lambda s: s not in saved_steps and (mngr.should_save(s) or s == config.steps)
  pending: list[jax.Array] = []
  pending_from = start
  bar = tqdm.tqdm(total=config.steps, initial=start, desc="train", dynamic_ncols=True,
                  disable=None if writer else True)
  progress = writers.ProgressLog(start, config.steps, enabled=writer and bar.disable)
  log = writers.MetricWriter(workdir, start, enabled=writer)
  dog = Watchdog(workdir, floor=config.watchdog_floor, multiple=config.watchdog_multiple)
  step = start
  try:
    with _StopRequest() as stop, dog:
      while True:
        last = step == config.steps
        saving = saves(step)
        with dog.phase("agreeing to stop", step):
          stopping = meshes.any_process(stop.requested)  # all processes stop at one step
        if step == start or stopping or saving or step % config.metrics_every == 0:
          with dog.phase("train steps, finishing on device", step):  # dispatch is async
            jax.block_until_ready(state)
          with dog.phase("evaluation", step):
            record = json_record(step, task.evaluate(state), members)
          losses = (np.concatenate(meshes.fetch(pending)) if pending
                    else np.zeros((0, members)))  # (T, M)
          log.write_losses(pending_from, losses)
          _check_finite(losses, pending_from, record, mngr)
          pending, pending_from = [], step
          records.append(record)
          log.write(record)
          bar.set_postfix({k.split("/")[0][:2] + "/" + k.split("/")[1][:3]:
                           f"{np.median(record[k]):.3f}" for k in keys.PROGRESS})
          if saving or (stopping and step not in saved_steps):
            with dog.phase("checkpoint save", step):
              checkpoints.save(mngr, step, state, record, force=stopping or last)
            saved_steps.add(step)
          if stopping:
            mngr.wait_until_finished()
            raise KeyboardInterrupt(f"interrupted: saved step {step} in {workdir}")
        if last:
          break
        count = _chunk(step, config, saves, length)
        with dog.phase("train step", step):
          state, losses = run_steps(state, next(feed), step, count)
        pending.append(losses[:count])
        step += count
        bar.update(count)
        progress.update(step)
      with dog.phase("checkpoint save", config.steps):
        mngr.wait_until_finished()
  finally:
    bar.close()
    log.close()
    feed.close()
    mngr.wait_until_finished()
    mngr.close()
    if writer:
      _report_time(workdir, dog.breakdown(), time.monotonic() - began)
  return records


def _report_time(workdir: str, phases: dict, total: float) -> None:
  """Prints where the run's time went and writes it to ``workdir/timing.json``.

  A phase's first call includes its compilation; "train step" is the host's dispatch of
  the steps, whose device time shows up in "train steps, finishing on device"."""
  accounted = sum(p["first_s"] + p["rest_s"] for p in phases.values())
  phases = phases | {"other (data, logging, setup)": {
      "calls": 1, "first_s": round(total - accounted, 3), "rest_s": 0.0}}
  rundir.write_atomic(os.path.join(workdir, "timing.json"),
                      json.dumps({"total_s": round(total, 3), "phases": phases}, indent=1))
  lines = []
  for name, p in phases.items():
    spent = p["first_s"] + p["rest_s"]
    lines.append(f"  {name:<34} {spent:8.1f} s {100 * spent / max(total, 1e-9):5.1f}%  "
                 f"({p['calls']} calls, the first {p['first_s']:.1f} s)")
  print(f"ncjax: {total:.1f} s in all; where the time went:", *lines, sep="\n",
        file=sys.stderr)
