"""Softmax temperature and the approach to collapse: one vmapped sweep on digits.

  ncjax train --config experiments/temperature.py --workdir runs/temperature

The digits CNN recipe (``digits_cnn_config``, no label smoothing, 1,000 steps) trained
with the cross-entropy of logits / T for T in ``sweep_values``, the five
networks are members of one vmapped state (one compile). The logged losses are at
T = 1. Writes ``sweep.png`` (final test accuracy, MIR, HDR, NC1, VCI against T) and
``sweep_curves.png`` (the same over steps, one line per T) beside ``curves.png``.

Measured on 2 CPU cores: 4 min 45 s (beside a test run; 3 min 29 s for the same-sized
label-smoothing sweep). Every T reaches 100% train accuracy; at step 1,000, T = 0.25, 0.5,
1, 2, 4: test accuracy 99.4, 99.4, 99.0, 99.0, 99.0%; NC1 0.169, 0.154, 0.146, 0.138,
0.133 and VCI 0.101, 0.091, 0.083, 0.077, 0.074 (a higher temperature collapses the
features more); MIR(head, means) 0.953, 0.947, 0.939, 0.930, 0.919 (falls with T); HDR
0.088, 0.083, 0.083, 0.083, 0.086 (flat). Figures and discussion: docs/studies.md.
"""

from common import digits_cnn_config


def get_config():
  return digits_cnn_config(**{
      "name": "digits CNN, softmax temperature", "loss.label_smoothing": 0.0,
      "sweep_key": "loss.temperature", "sweep_values": (0.25, 0.5, 1.0, 2.0, 4.0),
      "steps": 1000, "metrics_every": 100, "checkpoint_every": 500,
      "snapshots": 10})
