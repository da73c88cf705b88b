"""Grokking beyond algorithmic data, after Omnigrok (Liu et al. 2023): an MLP on a small
train split with a large initialisation, so that the network memorises first and
generalises only once weight decay has shrunk its weights.

scikit-learn's digits stand in for MNIST (no download): 50 train images per class (500),
the 500 held-out test images; MLP width 200, depth 3 (Omnigrok's), every initial weight
times 8 (their alpha); AdamW lr 1e-3, weight decay 0.1, batch 100, cross-entropy
(Omnigrok's MNIST runs use MSE and weight decay 0.01 over 10^5 steps; both changed here
to fit a 2-core CPU).

  ncjax train --config experiments/omnigrok_digits.py --workdir runs/omnigrok

Result on 2 CPU cores: see docs/grokking.md.
"""

import ml_collections

from ncjax.train.config import base_config


def get_config():
  c = base_config()
  c.name = "digits, 500 train images, MLP, init x8 (Omnigrok)"
  c.task = "classification"
  c.data.name = "digits"
  c.data.train_per_class = 50
  c.data.eval_batch_size = 500
  c.model.name = "image_mlp"
  c.model.kwargs = ml_collections.ConfigDict({"width": 200, "depth": 3})
  c.model.init_scale = 8.0
  c.update(dict(lr=1e-3, weight_decay=0.1, batch_size=100, steps=6000, metrics_every=100,
                checkpoint_every=1000, snapshots=30, sample_size=500))
  return c
