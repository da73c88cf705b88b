"""The paper's grokking setting (Song et al. 2024, after Nanda et al. 2023): a+b mod 113,
30% train (3,830 pairs), one-layer transformer (d_model 128, 4 heads, MLP 512), full
batch, AdamW lr 1e-3, betas (0.9, 0.98), weight decay 1.

  ncjax train --config experiments/grokking_paper.py --workdir runs/grok_paper

Expected (paper): train accuracy 100% within ~1k steps, test accuracy jumps to ~100%
around 10k steps; MIR(head, means) rises and plateaus during memorisation while HDR
falls; at the jump HDR spikes and MIR dips, then both settle. Not run to the end on
this 2-core CPU (40k steps).
"""

import ml_collections

from ncjax.train.config import base_config


def get_config():
  c = base_config()
  c.name = "a+b mod 113, transformer, 30% train (paper)"
  c.data.modulus = 113
  c.data.train_fraction = 0.3
  c.model.name = "transformer"
  c.model.kwargs = ml_collections.ConfigDict({"d_model": 128, "num_heads": 4, "mlp_dim": 512})
  c.optim.warmup_steps = 10  # the reference: lr * min(step / 10, 1)
  c.steps = 40_000
  c.metrics_every = 200
  c.checkpoint_every = 2000
  return c
