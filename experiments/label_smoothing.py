"""Label smoothing and the approach to collapse: one vmapped sweep on digits.

  ncjax train --config experiments/label_smoothing.py --workdir runs/label_smoothing

The digits CNN recipe (``digits_cnn_config``, 1,000 steps) trained with the target
(1 - s) one_hot + s / C for s in ``sweep_values``, the five networks
are members of one vmapped state (one compile). The logged losses are unsmoothed. Writes
``sweep.png`` (final test accuracy, MIR, HDR, NC1, VCI against s) and
``sweep_curves.png`` (the same over steps, one line per s) beside ``curves.png``.

RESULT
"""

from ncjax.train.config import digits_cnn_config


def get_config():
  return digits_cnn_config(**{
      "name": "digits CNN, label smoothing", "sweep_key": "loss.label_smoothing",
      "sweep_values": (0.0, 0.05, 0.1, 0.2, 0.4), "steps": 1000,
      "metrics_every": 100, "checkpoint_every": 500, "snapshots": 10})
