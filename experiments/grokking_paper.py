"""The paper's grokking setting (Song et al. 2024, after Nanda et al. 2023): a+b mod 113,
30% train (3,830 pairs), Nanda et al.'s one-layer transformer (d_model 128, 4 heads, MLP
512, no LayerNorm; ncjax/models/nets.py), full batch, AdamW lr 1e-3 after a 10-step
warm-up, betas (0.9, 0.98), weight decay 1.

  ncjax train --config experiments/grokking_paper.py --workdir runs/grok_paper

Measured on 2 CPU cores (other jobs beside it; ~21 min to step 6,400): train accuracy
100% at step 184, test accuracy >= 95% at step 6,400 (metrics every 200 steps).
Train-split MIR(means, head) 0.89 through memorisation, dipping to 0.41 after the jump;
its HDR 0.12 through memorisation, 0.41 at the jump, ~0.25 after. Sample-level HDR
falls 0.90 -> 0.05 during memorisation. The paper: HDR .46 -> .08 during memorisation,
.49 at the jump, ~.12 after; MIR .615 plateau, dip ~.36. Details and the comparison with
the previous model: docs/grokking.md.
"""

from common import grokking_paper_config


def get_config():
  return grokking_paper_config()
