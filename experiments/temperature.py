"""Softmax temperature and the approach to collapse: one vmapped sweep on digits.

  ncjax train --config experiments/temperature.py --workdir runs/temperature

The digits CNN recipe (``digits_cnn_config``, no label smoothing, 1,000 steps) trained
with the cross-entropy of logits / T for T in ``sweep_values``, the five
networks are members of one vmapped state (one compile). The logged losses are at
T = 1. Writes ``sweep.png`` (final test accuracy, MIR, HDR, NC1, VCI against T) and
``sweep_curves.png`` (the same over steps, one line per T) beside ``curves.png``.

RESULT
"""

from ncjax.train.config import digits_cnn_config


def get_config():
  return digits_cnn_config(**{
      "name": "digits CNN, softmax temperature", "loss.label_smoothing": 0.0,
      "sweep_key": "loss.temperature", "sweep_values": (0.25, 0.5, 1.0, 2.0, 4.0),
      "steps": 1000, "metrics_every": 100, "checkpoint_every": 500,
      "snapshots": 10})
