"""Grokfast (Lee et al. 2024) against a fair baseline on the default grokking task
(a+b mod 97, embedding MLP, 50% train, full batch, AdamW betas (0.9, 0.98), weight
decay 1), five seeds in one vmapped run per arm:

- ``adamw``: lr 1e-3 (experiments/grokking.py);
- ``grokfast_ema``: the same with the EMA filter chained before AdamW (alpha 0.98,
  lamb 2, the reference defaults);
- ``adamw_lr_matched``: AdamW at lr (1 + lamb) * 1e-3 = 3e-3: the filter's gain at zero
  frequency, so that a speed-up is not just a larger step.

  ncjax study --config experiments/grokfast.py --workdir runs/grokfast

AdamW and Grokfast stop at step 2,000, the lr-matched AdamW at 1,200 (an arm that has
not reached 95% by then is reported as such). Prints each arm's steps to 95% test accuracy (mean +- std over seeds; metrics every 50
steps) and writes summary.json; results in docs/grokking.md.
"""

import ml_collections
from common import overridden

from ncjax.train.config import base_config

LAMB = 2.0


def arm(steps, **overrides):
  c = base_config()
  c.name = "a+b mod 97, embedding MLP, 50% train, 5 seeds"
  return overridden(c, {"num_seeds": 5, "steps": steps, "metrics_every": 50,
                        "checkpoint_every": 500, "snapshots": 10, **overrides})


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "Grokfast EMA vs AdamW vs lr-matched AdamW"
  c.summary = "compare"
  c.runs = ml_collections.ConfigDict({
      "adamw": arm(2000),  # groks near step 1,600-2,000 (experiments/grokking.py)
      "grokfast_ema": arm(2000, **{"optim.grokfast": "ema", "optim.grokfast_lamb": LAMB,
                             "name": "Grokfast EMA (alpha 0.98, lamb 2)"}),
      "adamw_lr_matched": arm(1200, lr=(1 + LAMB) * 1e-3, name="AdamW, lr 3e-3"),
  })
  c.compare = ml_collections.ConfigDict({name: (name,) for name in c.runs})
  return c
