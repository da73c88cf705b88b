"""Collapse layer by layer: NC1, VCI, CDNV, matrix entropy and effective rank of the
features after every block of the digits CNN, over training.

  ncjax train --config experiments/layerwise.py --workdir runs/layerwise

The digits recipe (``digits_cnn_config``, 2,000 steps) with a deeper CNN, four conv
blocks of (32, 32, 64, 64) channels; ``layer_metrics`` streams every block's output
(globally average-pooled) into its own ClassStats in the metrics pass over the train
split and logs ``layer<i>/<metric>``; ``layers.png`` draws them against depth (the
penultimate features last) at log-spaced steps. A WRN on a prepared TFDS dataset works
the same way: ``--config=experiments/cifar10_wrn.py --config.layer_metrics=True``.

RESULT
"""

import ml_collections

from ncjax.train.config import digits_cnn_config


def get_config():
  c = digits_cnn_config(**{"name": "digits CNN, collapse layer by layer", "layer_metrics": True,
                           "steps": 2000, "snapshots": 10})
  c.model.kwargs = ml_collections.ConfigDict(
      {"channels": (32, 32, 64, 64), "features": 128, "head_bias": True})
  return c
