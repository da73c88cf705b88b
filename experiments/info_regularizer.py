"""The information regulariser (Song et al. 2024) on digits: on vs off, five seeds each.

  ncjax study --config experiments/info_regularizer.py --workdir runs/info_reg

Both arms are the digits CNN recipe of experiments/digits.py (SGD, L2 weight decay 5e-3,
label smoothing 0.1) shortened to 1,000 steps and trained on 300 train images (30 per
class, so that test accuracy has room to move), seeds 0-4 as five one-seed runs per arm
(five seeds in one vmapped state hang on XLA:CPU with this loss, jaxlib 0.10.2);
``info`` adds ``-0.1 I(G(f); G(w_y)) + 0.1 |H(G(f)) - H(G(w_y))|`` on every batch.

Measured on 2 CPU cores (15 min 26 s with the test suite running beside it): test accuracy
CE 98.04% +- 0.32%, with the regulariser 98.12% +- 0.32% (no gain); train NC1 0.031 ->
0.0031, VCI 0.015 -> 0.0018, sample HDR 0.34 -> 0.001. Details: docs/transfer.md.
"""

import ml_collections

from ncjax.train.config import digits_cnn_config


SEEDS = range(5)


def arm(seed, **loss):
  """The digits recipe on 30 train images per class, 1,000 steps, one seed."""
  return digits_cnn_config(**{
      "data.train_per_class": 30, "data.eval_batch_size": 512, "optim.warmup_steps": 50,
      "seed": seed, "batch_size": 100, "steps": 1000, "metrics_every": 250,
      "snapshots": 5, "sample_size": 300, **{f"loss.{k}": v for k, v in loss.items()},
      "name": "digits, 30 train images per class" + (", information regulariser" * bool(loss))})


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "information regulariser on digits (300 train images), 5 seeds"
  c.summary = "compare"
  c.compare = ml_collections.ConfigDict({"ce": tuple(f"ce_s{i}" for i in SEEDS),
                                         "info": tuple(f"info_s{i}" for i in SEEDS)})
  c.runs = ml_collections.ConfigDict(
      {f"ce_s{i}": arm(i) for i in SEEDS} | {f"info_s{i}": arm(i, info_lam=0.1, info_lam2=0.1)
                                              for i in SEEDS})
  return c
