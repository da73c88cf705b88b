"""The information regulariser (Song et al. 2024) on digits: on vs off, five seeds each.

  ncjax study --config experiments/info_regularizer.py --workdir runs/info_reg

Both arms are the digits CNN recipe of experiments/digits.py (SGD, L2 weight decay 5e-3,
label smoothing 0.1) shortened to 1,000 steps and trained on 300 train images (30 per
class, so that test accuracy has room to move), five seeds each as one vmapped state;
``info`` adds ``-0.1 I(G(f); G(w_y)) + 0.1 |H(G(f)) - H(G(w_y))|`` on every batch.

RESULT (filled in below from a measured run).
"""

import ml_collections

from ncjax.train.config import digits_cnn_config


def arm(**loss):
  """The digits recipe on 30 train images per class, 1,000 steps, five seeds."""
  return digits_cnn_config(**{
      "data.train_per_class": 30, "data.eval_batch_size": 512, "optim.warmup_steps": 50,
      "num_seeds": 5, "batch_size": 100, "steps": 1000, "metrics_every": 250,
      "snapshots": 5, "sample_size": 300, **{f"loss.{k}": v for k, v in loss.items()},
      "name": "digits, 30 train images per class" + (", information regulariser" * bool(loss))})


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "information regulariser on digits (300 train images), 5 seeds"
  c.summary = "compare"
  c.compare = ("ce", "info")
  c.runs = ml_collections.ConfigDict({"ce": arm(), "info": arm(info_lam=0.1, info_lam2=0.1)})
  return c
