"""The metric writer (JSONL, TensorBoard) and the progress lines of a run without a terminal."""

import io
import json
import pathlib
import struct

import numpy as np
import pytest

from ncjax.train import writers


def read(path):
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def test_records_go_to_metrics_jsonl_in_todays_format(tmp_path):
  writer = writers.MetricWriter(str(tmp_path), 0)
  writer.write({"step": 0, "train/loss": 1.5, "test/accuracy": [0.1, 0.2]})
  writer.close()
  assert read(tmp_path / "metrics.jsonl") == [{"step": 0, "train/loss": 1.5,
                                               "test/accuracy": [0.1, 0.2]}]


def test_step_losses_go_to_losses_jsonl_one_line_per_step(tmp_path):
  writer = writers.MetricWriter(str(tmp_path), 0)
  writer.write_losses(3, np.array([[2.0], [1.0]]))
  writer.close()
  assert read(tmp_path / "losses.jsonl") == [{"step": 3, "train/step_loss": 2.0},
                                             {"step": 4, "train/step_loss": 1.0}]


def test_a_resumed_run_drops_the_losses_of_steps_it_trains_again(tmp_path):
  writer = writers.MetricWriter(str(tmp_path), 0)
  writer.write_losses(0, np.ones((6, 1)))
  writer.close()
  writers.MetricWriter(str(tmp_path), 4).close()
  assert [r["step"] for r in read(tmp_path / "losses.jsonl")] == [0, 1, 2, 3]


def test_a_disabled_writer_writes_nothing(tmp_path):
  writer = writers.MetricWriter(str(tmp_path), 0, enabled=False)
  writer.write({"step": 0, "train/loss": 1.0})
  writer.write_losses(0, np.ones((1, 1)))
  writer.close()
  assert not list(tmp_path.iterdir())


def scalars(logdir):
  """[(tag, step, value)] of the event files under ``logdir`` (TFRecord framing:
  length u64, its crc u32, the Event proto, its crc u32)."""
  from tensorboardX.proto.event_pb2 import Event

  out = []
  for path in sorted(logdir.iterdir()):
    data = path.read_bytes()
    while data:
      (length,) = struct.unpack("<Q", data[:8])
      event = Event.FromString(data[12:12 + length])
      data = data[16 + length:]
      out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
  return out


def test_tensorboard_event_files_hold_every_scalar(tmp_path):
  pytest.importorskip("tensorboardX")
  writer = writers.MetricWriter(str(tmp_path), 0)
  writer.write_losses(0, np.array([[2.0, 3.0]]))
  writer.write({"step": 1, "collapse/mir": 0.5})
  writer.close()
  assert scalars(tmp_path / "tensorboard") == [
      ("train/step_loss/member_0", 0, 2.0), ("train/step_loss/member_1", 0, 3.0),
      ("collapse/mir", 1, 0.5)]


def test_progress_lines_give_rate_and_eta_at_the_interval():
  now = [0.0]
  out = io.StringIO()
  progress = writers.ProgressLog(0, 100, enabled=True, interval=10, stream=out,
                                 clock=lambda: now[0])
  now[0] = 5.0
  progress.update(10)  # before the interval: silent
  now[0] = 10.0
  progress.update(20)
  assert out.getvalue() == "ncjax: step 20/100 (20%), 2.0 steps/s, ETA 40 s\n"


def test_progress_lines_are_silent_when_disabled():
  out = io.StringIO()
  progress = writers.ProgressLog(0, 10, enabled=False, interval=0, stream=out)
  progress.update(5)
  assert out.getvalue() == ""
