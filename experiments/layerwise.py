"""Collapse layer by layer: NC1, VCI, CDNV, matrix entropy and effective rank of the
features after every block of the digits CNN, over training.

  ncjax train --config experiments/layerwise.py --workdir runs/layerwise

The digits recipe (``digits_cnn_config``, 2,000 steps) with a deeper CNN, four conv
blocks of (32, 32, 64, 64) channels; ``layer_metrics`` streams every block's output
(globally average-pooled) into its own ClassStats in the metrics pass over the train
split and logs ``layer<i>/<metric>``; ``layers.png`` draws them against depth (the
penultimate features last) at log-spaced steps. A WRN on a prepared TFDS dataset works
the same way: ``--config=experiments/cifar10_wrn.py --config.layer_metrics=True``.

Measured on 2 CPU cores: 1 min 53 s; train accuracy 100% from step ~100, test 99.2%.
NC1 after blocks 1-4 and of the penultimate features: step 100: 2.42, 0.91, 0.26, 0.12,
0.077; step 600: 2.22, 0.63, 0.058, 0.015, 0.011; step 2,000: 2.54, 0.47, 0.010, 0.0005,
0.0002. Collapse starts at the top and moves down: the last blocks collapse first and
furthest, block 3 follows, block 2 only partly (0.91 -> 0.47) and block 1 not at all; the
entropy of the centred means reaches log 9 = 2.197 (a simplex ETF) from block 3 on.
Figure: docs/layerwise.png.
"""

import ml_collections
from common import digits_cnn_config


def get_config():
  c = digits_cnn_config(**{"name": "digits CNN, collapse layer by layer", "layer_metrics": True,
                           "steps": 2000, "snapshots": 10})
  c.model.kwargs = ml_collections.ConfigDict(
      {"channels": (32, 32, 64, 64), "features": 128, "head_bias": True})
  return c
