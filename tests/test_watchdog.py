"""The watchdog: a stalled phase ends the process with its stacks, one stderr line and
exit status 75, and the run resumes cleanly from its checkpoints."""

import glob
import os
import pathlib
import subprocess
import sys
import time

import pytest

from ncjax.train.watchdog import EXIT_STALLED, Watchdog
from tests.runs import ROOT, TINY_GROKKING, ncjax_cmd, read_log

# Runs the CLI with the chunk of train steps that starts at step STALL_AT stalled (a
# sleep), as a hung device program would stall it.
STALLING_CLI = """
import sys, time
import ncjax.train.loop as loop
from ncjax import cli

make = loop.make_train_chunk
def stalling(*args, **kwargs):
  run = make(*args, **kwargs)
  def chunk(state, data, first, count):
    if first == {stall_at}:
      time.sleep(600)
    return run(state, data, first, count)
  return chunk
loop.make_train_chunk = stalling
sys.argv = ["ncjax", *sys.argv[1:]]
cli.main()
"""


def test_limit_is_a_multiple_of_the_median_with_a_floor():
  dog = Watchdog("/nonexistent", floor=10.0, multiple=5.0)
  assert dog.limit("step") == 10.0  # nothing measured yet (a first call compiles)
  dog._durations["step"] = [1.0, 3.0, 100.0]
  assert dog.limit("step") == 15.0  # 5 x median 3
  dog._durations["step"] = [0.1, 0.1]
  assert dog.limit("step") == 10.0


def test_a_stalled_phase_ends_the_process_with_stacks_and_one_line(tmp_path):
  script = ("import time\nfrom ncjax.train.watchdog import Watchdog\n"
            f"with Watchdog({str(tmp_path)!r}, floor=1.0, resume='rerun me') as dog:\n"
            "  with dog.phase('evaluation', 7):\n"
            "    time.sleep(120)\n")
  start = time.monotonic()
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
  assert out.returncode == EXIT_STALLED
  assert time.monotonic() - start < 30
  line = out.stderr.strip().splitlines()[-1]
  assert "stalled in evaluation at step 7" in line and "rerun me to resume" in line
  (dump,) = glob.glob(str(tmp_path / "stall-*.txt"))
  assert dump in line
  text = pathlib.Path(dump).read_text()
  assert "evaluation at step 7 made no progress" in text and 'File "<string>", line 5' in text


def test_phases_that_progress_are_left_alone(tmp_path):
  with Watchdog(str(tmp_path), floor=1.0, multiple=2.0) as dog:
    for i in range(4):
      with dog.phase("step", i):
        time.sleep(0.5)
  assert not glob.glob(str(tmp_path / "stall-*.txt"))


@pytest.mark.slow
def test_a_stalled_run_exits_then_resumes_cleanly(tmp_path):
  workdir = tmp_path / "run"
  args = ncjax_cmd(workdir, "--config.watchdog_floor=60", "--config.steps=40",
                   "--config.checkpoint_every=10", "--config.metrics_every=10",
                   tiny=[a for a in TINY_GROKKING if "steps" not in a and "every" not in a])[3:]
  stalled = subprocess.run([sys.executable, "-c", STALLING_CLI.format(stall_at=20), *args],
                           capture_output=True, text=True, timeout=400, cwd=ROOT)
  assert stalled.returncode == EXIT_STALLED, stalled.stderr[-2000:]
  line = stalled.stderr.strip().splitlines()[-1]
  assert "stalled in train step at step 20" in line and "--config.watchdog_floor=60" in line
  assert glob.glob(str(workdir / "stall-*.txt"))
  assert max(r["step"] for r in read_log(workdir)) == 20  # stalled before step 30's metrics
  resumed = subprocess.run([sys.executable, "-m", "ncjax", *args], capture_output=True,
                           text=True, timeout=400, cwd=ROOT)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  steps = [r["step"] for r in read_log(workdir)]
  assert steps == sorted(set(steps)) and {20, 30, 40} <= set(steps)
  assert os.path.isdir(workdir / "checkpoints" / "40")
