"""The information regulariser (Song et al. 2024): on vs off, five seeds each.

  ncjax study --config experiments/info_regularizer.py --workdir runs/info_reg
  ncjax study --config experiments/info_regularizer.py:fashion_mnist --workdir runs/info_fm

Both arms are the dataset's CNN recipe (experiments/digits.py by default: SGD, L2 weight
decay 5e-3, label smoothing 0.1; or experiments/fashion_mnist.py) shortened to 1,000
steps and trained on a small class-balanced train set (digits: 30 images per class;
Fashion-MNIST: 100), so that test accuracy has room to move, seeds 0-4 as one vmapped
state per arm (they deadlocked XLA:CPU with this loss until the eigensolvers ran one
matrix at a time on CPU: docs/numerics.md); ``info`` adds ``-0.1 I(G(f); G(w_y)) + 0.1 |H(G(f)) - H(G(w_y))|`` on every batch.

Measured on 2 CPU cores with the earlier layout of ten one-seed runs, digits (15 min 26 s with the test suite running beside it): test
accuracy CE 98.04% +- 0.32%, with the regulariser 98.12% +- 0.32% (no gain); train NC1
0.031 -> 0.0031, VCI 0.015 -> 0.0018, sample HDR 0.34 -> 0.001. Fashion-MNIST (38 min 42 s
beside the test suite): CE 83.61% +- 0.24%, with the regulariser 84.06% +- 0.30%, better
in 5 of 5 seeds by +0.45 +- 0.23 points; train NC1 0.33 -> 0.080. Details: docs/transfer.md.
"""

import ml_collections
from common import cnn_recipe

SEEDS = 5
PER_CLASS = {"digits": 30, "fashion_mnist": 100}


def get_config(data="digits"):
  def arm(**loss):
    """The recipe on PER_CLASS train images per class, 1,000 steps, SEEDS seeds."""
    return cnn_recipe(data, **{
        "data.train_per_class": PER_CLASS[data], "optim.warmup_steps": 50,
        "data.eval_batch_size": 512 if data == "digits" else 1000,
        "seed": 0, "num_seeds": SEEDS, "batch_size": 100, "steps": 1000, "metrics_every": 250,
        "snapshots": 5, "sample_size": 300, **{f"loss.{k}": v for k, v in loss.items()},
        "name": f"{data}, {PER_CLASS[data]} train images per class"
                + (", information regulariser" * bool(loss))})

  c = ml_collections.ConfigDict()
  c.name = f"information regulariser on {data} ({10 * PER_CLASS[data]} train images), 5 seeds"
  c.summary = "compare"
  c.compare = ml_collections.ConfigDict({"ce": ("ce",), "info": ("info",)})
  c.runs = ml_collections.ConfigDict({"ce": arm(), "info": arm(info_lam=0.1, info_lam2=0.1)})
  return c
