"""A watchdog that turns a stall (a deadlocked device program, a lost peer, a hung save)
into a clear error instead of a silent hang.

The trainer, the evaluator and ``ncjax analyze`` report progress with :meth:`Watchdog.phase`
(``with dog.phase("train step", step): ...``). A background thread checks, once a second,
how long the current phase has run; past its limit it writes every thread's stack
(``faulthandler``) to ``DIR/stall-<time>.txt``, prints one line on stderr naming the
phase, the step and how to resume, and ends the process with :data:`EXIT_STALLED`
(``os._exit``: the stalled thread cannot be interrupted). Checkpoints are written
atomically, so the newest intact one is where a rerun resumes.

A phase's limit is ``multiple`` times the median of its own earlier durations, at least
``floor`` seconds (the first run of a phase, which compiles, gets the floor).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import shlex
import statistics
import sys
import threading
import time

EXIT_STALLED = 75  # EX_TEMPFAIL: rerunning the same command resumes


def command_line() -> str:
  """This process's command (``python -m ncjax`` for the module), without --overwrite."""
  argv = [a for a in sys.argv if a != "--overwrite"]
  head = ["python", "-m", "ncjax"] if argv and argv[0].endswith("__main__.py") else argv[:1]
  return shlex.join(head + argv[1:])


class Watchdog:
  """Ends the process, saying why, when a phase makes no progress for too long.

  Args:
    workdir: where the stack dump goes.
    floor: the least time (seconds) a phase may take before it counts as stalled.
    multiple: limit = max(floor, multiple x median of the phase's earlier durations).
    resume: how to resume, for the message; default: rerun this process's command line
      (without ``--overwrite``).
  Use as a context manager (the thread runs inside it); ``floor <= 0`` disables it.
  """

  def __init__(self, workdir: str, *, floor: float = 600.0, multiple: float = 50.0,
               resume: str | None = None):
    self.workdir, self.floor, self.multiple = workdir, floor, multiple
    self.resume = resume or f"rerun `{command_line()}`"
    self._durations: dict[str, list[float]] = {}
    self._current: tuple[str, int | None, float] | None = None
    self._lock = threading.Lock()
    self._done = threading.Event()
    self._thread: threading.Thread | None = None

  def __enter__(self) -> Watchdog:
    if self.floor > 0:
      self._thread = threading.Thread(target=self._watch, name="ncjax-watchdog", daemon=True)
      self._thread.start()
    return self

  def __exit__(self, *_) -> None:
    self._done.set()
    if self._thread is not None:
      self._thread.join()

  def limit(self, phase: str) -> float:
    """Seconds the phase may run before it counts as stalled."""
    past = self._durations.get(phase)
    return max(self.floor, self.multiple * statistics.median(past)) if past else self.floor

  def breakdown(self) -> dict[str, dict[str, float]]:
    """Where the time went: per phase, its calls, the first call's seconds (which
    compiles, for a jitted phase) and the other calls' total seconds."""
    with self._lock:
      return {name: {"calls": len(d), "first_s": round(d[0], 3), "rest_s": round(sum(d[1:]), 3)}
              for name, d in self._durations.items()}

  @contextlib.contextmanager
  def phase(self, name: str, step: int | None = None):
    """Marks a phase (e.g. "train step", "evaluation", "checkpoint save") at ``step``."""
    start = time.monotonic()
    with self._lock:
      outer, self._current = self._current, (name, step, start)
    try:
      yield
    finally:
      with self._lock:
        self._durations.setdefault(name, []).append(time.monotonic() - start)
        self._current = outer if outer is None else (*outer[:2], time.monotonic())

  def _watch(self) -> None:
    while not self._done.wait(1.0):
      with self._lock:
        current = self._current
      if current is None:
        continue
      name, step, start = current
      waited, limit = time.monotonic() - start, self.limit(name)
      if waited > limit:
        self._stalled(name, step, waited, limit)

  def _stalled(self, name: str, step: int | None, waited: float, limit: float) -> None:
    path = os.path.join(self.workdir, f"stall-{time.strftime('%Y%m%d-%H%M%S')}.txt")
    try:
      os.makedirs(self.workdir, exist_ok=True)
      with open(path, "w") as f:
        f.write(f"ncjax watchdog: {name} at step {step} made no progress for "
                f"{waited:.0f} s (limit {limit:.0f} s). Every thread's stack:\n\n")
        f.flush()
        faulthandler.dump_traceback(file=f, all_threads=True)
    except OSError as e:
      path = f"(not written: {e})"
    at = "" if step is None else f" at step {step}"
    print(f"ncjax: stalled in {name}{at}: no progress for {waited:.0f} s (limit {limit:.0f} s); "
          f"thread stacks in {path}. The checkpoints are intact: {self.resume} to resume.",
          file=sys.stderr, flush=True)
    os._exit(EXIT_STALLED)
