"""A small CNN on scikit-learn's digits, trained well into the terminal phase (offline).

  ncjax train --config experiments/digits.py --workdir runs/digits

1,297 train / 500 test 8x8 images, 10 classes; SGD with Nesterov momentum, cosine decay
after a short warm-up, weight decay 5e-4, batch 128. See docs/classification.md for the
measured result, the recipes tried and the figure.
"""

import ml_collections

from ncjax.train.config import base_config


def get_config():
  c = base_config()
  c.name = "digits, CNN, SGD (terminal phase)"
  c.task = "classification"
  c.data.name = "digits"
  c.data.eval_batch_size = 650  # the 1,297 train images in two batches
  c.model.name = "cnn"
  c.model.kwargs = ml_collections.ConfigDict({"channels": (32, 64), "features": 128})
  c.optim.name = "sgd"
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 100
  c.lr = 0.05
  c.weight_decay = 5e-4
  c.optim.decoupled_weight_decay = False  # L2, as in the collapse literature's SGD
  c.batch_size = 128
  c.steps = 3000
  c.metrics_every = 100
  c.checkpoint_every = 500
  c.snapshots = 30
  c.sample_size = 500
  return c
