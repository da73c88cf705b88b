"""The one place every logged scalar goes through, and progress lines for logs.

:class:`MetricWriter` writes each evaluated record to ``metrics.jsonl`` (one JSON object
per logged step, the format ncjax always had) and the training loss of every step to
``losses.jsonl`` (``{"step", "train/step_loss"}``); when tensorboardX is installed (the
``tensorboard`` extra) it writes both to TensorBoard event files under ``tensorboard/``
too (``tensorboard --logdir DIR/tensorboard``). A value per member (several seeds) is a
list in JSON and one TensorBoard tag per member (``KEY/member_i``).

:class:`ProgressLog` prints ``step, steps/s, ETA`` lines at an interval when the run has
no terminal (tqdm's bar shows nothing there).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TextIO

import numpy as np

from ncjax import keys
from ncjax.train import rundir


def _tensorboard(logdir: str):
  """A tensorboardX SummaryWriter, or None where tensorboardX is not installed."""
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    return None
  return SummaryWriter(logdir)


class MetricWriter:
  """Writes the records of a run in ``workdir`` from step ``start`` on (a resumed run's
  losses of later steps are dropped first). ``enabled=False`` (a process other than 0)
  writes nothing."""

  def __init__(self, workdir: str, start: int, *, enabled: bool = True):
    self._metrics: TextIO | None = None
    self._losses: TextIO | None = None
    self._board = None
    if not enabled:
      return
    losses = os.path.join(workdir, "losses.jsonl")
    rundir.write_jsonl(losses, [r for r in rundir.read_log(losses) if r["step"] < start])
    # Held open for the run (appended to at every evaluation); closed by close().
    self._metrics = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115
    self._losses = open(losses, "a")  # noqa: SIM115
    self._board = _tensorboard(os.path.join(workdir, "tensorboard"))

  def _scalars(self, step: int, record: dict) -> None:
    if self._board is None:
      return
    for key, value in record.items():
      if key == "step":
        continue
      if isinstance(value, list):
        for i, v in enumerate(value):
          self._board.add_scalar(f"{key}/member_{i}", v, step)
      else:
        self._board.add_scalar(key, value, step)

  def write(self, record: dict) -> None:
    """An evaluated record ``{"step": int, KEY: float or [float per member]}``."""
    if self._metrics is None:  # not enabled
      return
    self._metrics.write(json.dumps(record) + "\n")
    self._metrics.flush()
    self._scalars(record["step"], record)

  def write_losses(self, first_step: int, losses: np.ndarray) -> None:
    """The training losses (T, M) of steps ``first_step .. first_step + T - 1``."""
    if self._losses is None:  # not enabled
      return
    for t, row in enumerate(np.asarray(losses, float)):
      value = float(row[0]) if len(row) == 1 else row.tolist()
      record = {"step": first_step + t, keys.STEP_LOSS: value}
      self._losses.write(json.dumps(record) + "\n")
      self._scalars(first_step + t, record)
    self._losses.flush()

  def close(self) -> None:
    for f in (self._metrics, self._losses, self._board):
      if f is not None:
        f.close()


class ProgressLog:
  """``ncjax: step 1200/3000 (40%), 85.3 steps/s, ETA 21 s`` on ``stream`` at most every
  ``interval`` seconds, the rate over the steps since the last line (``clock``: seconds,
  ``time.monotonic``); silent unless enabled."""

  def __init__(self, start: int, total: int, *, enabled: bool, interval: float = 30.0,
               stream=None, clock=time.monotonic):
    self._total, self._enabled = total, enabled
    self._interval, self._stream, self._clock = interval, stream or sys.stderr, clock
    self._last, self._last_step = clock(), start

  def update(self, step: int) -> None:
    now = self._clock()
    if not self._enabled or now - self._last < self._interval:
      return
    rate = (step - self._last_step) / max(now - self._last, 1e-9)
    self._last, self._last_step = now, step
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    print(f"ncjax: step {step}/{self._total} ({100 * step // self._total}%), "
          f"{rate:.1f} steps/s, ETA {eta:.0f} s", file=self._stream, flush=True)
