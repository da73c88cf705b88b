"""Label smoothing and the approach to collapse: one vmapped sweep on digits.

  ncjax train --config experiments/label_smoothing.py --workdir runs/label_smoothing

The digits CNN recipe (``digits_cnn_config``, 1,000 steps) trained with the target
(1 - s) one_hot + s / C for s in ``sweep_values``, the five networks
are members of one vmapped state (one compile). The logged losses are unsmoothed. Writes
``sweep.png`` (final test accuracy, MIR, HDR, NC1, VCI against s) and
``sweep_curves.png`` (the same over steps, one line per s) beside ``curves.png``.

Measured on 2 CPU cores: 3 min 29 s. Every s reaches 100% train accuracy; at step 1,000,
s = 0, 0.05, 0.1, 0.2, 0.4: test accuracy 99.0, 99.6, 99.6, 99.8, 99.8%; NC1 0.146, 0.071,
0.057, 0.046, 0.042 and VCI 0.083, 0.047, 0.038, 0.030, 0.027 (stronger smoothing, more
collapse); MIR 0.939, 0.960, 0.960, 0.960, 0.960; HDR 0.083, 0.019, 0.017, 0.016, 0.018;
entropy of the centred means 1.97, 2.17, 2.18, 2.18, 2.18 (log 9 = 2.197 at a simplex
ETF). Figures and discussion: docs/studies.md.
"""

from common import digits_cnn_config


def get_config():
  return digits_cnn_config(**{
      "name": "digits CNN, label smoothing", "sweep_key": "loss.label_smoothing",
      "sweep_values": (0.0, 0.05, 0.1, 0.2, 0.4), "steps": 1000,
      "metrics_every": 100, "checkpoint_every": 500, "snapshots": 10})
