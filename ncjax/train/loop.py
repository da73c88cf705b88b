"""The training loop: resume, log, checkpoint, stop cleanly on NaN or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from ncjax.analysis import plots
from ncjax.models import make_model
from ncjax.train import checkpoints
from ncjax.train.steps import create_states, make_metrics_fn, make_train_step, seed_splits


class NonFiniteLoss(RuntimeError):
  """The training loss became NaN or Inf."""


def _read_log(path: str, before: int) -> list[dict]:
  """Logged records with step < ``before`` (a resumed run rewrites the rest)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if r["step"] < before]


def _check_losses(pending: list, first_step: int, mngr) -> None:
  """Raises NonFiniteLoss naming the first step (and seed) whose loss is not finite."""
  if not pending:
    return
  losses = np.asarray(jax.device_get(jnp.stack(pending)))  # (steps, S)
  bad = np.argwhere(~np.isfinite(losses))
  if bad.size:
    step, seed = bad[0]
    raise NonFiniteLoss(
        f"training loss is {losses[step, seed]} at step {first_step + step} (seed index "
        f"{seed}); stopping. The last good checkpoint is step {mngr.latest_step()}.")


def json_record(step: int, metrics: dict, num_seeds: int) -> dict:
  """A JSON record: scalars for one seed, lists of per-seed values for several."""
  values = jax.device_get(metrics)
  per_seed = lambda v: float(v[0]) if num_seeds == 1 else [float(x) for x in v]
  return {"step": step, **{k: per_seed(v) for k, v in values.items()}}


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


def train(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Trains ``config`` in ``workdir``; resumes from its latest checkpoint if any.

  Writes ``metrics.jsonl``, ``config.json``, ``checkpoints/`` and ``curves.png``.
  Returns the logged records.
  """
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  train_split, test_split = jax.device_put(seed_splits(config))
  seeds = jnp.arange(config.num_seeds) + config.seed
  model = make_model(config)
  state = create_states(config, model)
  mngr = checkpoints.manager(workdir, config.steps, config.snapshots, config.checkpoint_every,
                             config.keep_checkpoints)
  start = mngr.latest_step() or 0
  if start:
    state = checkpoints.restore_state(mngr, start, state)
  log_path = os.path.join(workdir, "metrics.jsonl")
  records = _read_log(log_path, start)
  with open(log_path, "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)

  step_fn = make_train_step(config.batch_size)
  metrics_fn = make_metrics_fn(model.apply, config.modulus, config.sample_size)
  pending, pending_from = [], start
  bar = tqdm.tqdm(total=config.steps, initial=start, desc="train", dynamic_ncols=True,
                  disable=None)
  try:
    with _StopRequest() as stop, open(log_path, "a") as log:
      for step in range(start, config.steps + 1):
        last = step == config.steps
        saving = step != mngr.latest_step() and (mngr.should_save(step) or last)
        if stop.requested or saving or step % config.metrics_every == 0:
          _check_losses(pending, pending_from, mngr)
          pending, pending_from = [], step
          record = json_record(step, metrics_fn(state.params, train_split, test_split),
                           config.num_seeds)
          records.append(record)
          log.write(json.dumps(record) + "\n")
          log.flush()
          bar.set_postfix({k.split("/")[0][:2] + "/" + k.split("/")[1][:3]:
                           f"{np.median(record[k]):.3f}" for k in
                           ("train/accuracy", "test/accuracy", "collapse/mir", "collapse/hdr")})
          if saving or stop.requested:
            checkpoints.save(mngr, step, state, record, force=stop.requested or last)
          if stop.requested:
            mngr.wait_until_finished()
            raise KeyboardInterrupt(f"interrupted: saved step {step} in {workdir}")
        if last:
          break
        state, loss = step_fn(state, train_split, seeds)
        pending.append(loss)
        bar.update(1)
  finally:
    bar.close()
    mngr.wait_until_finished()
    mngr.close()
  plots.curves(records, os.path.join(workdir, "curves.png"), title=config.get("name", ""))
  return records
