"""The paper's grokking setting (experiments/grokking_paper.py: a+b mod 113, 30% train,
full batch, AdamW lr 1e-3, weight decay 1) with Nanda et al.'s transformer
(``transformer``) and with the model ncjax shipped before (``flax_transformer``: flax's
default layers, biases, no warm-up), each run past 95% test accuracy; compare.png
overlays test accuracy, MIR, HDR and the entropies.

  ncjax study --config experiments/grokking_paper_models.py --workdir runs/paper_models

Result on 2 CPU cores (and the paper's values beside them): docs/grokking.md.
"""

import ml_collections
from common import grokking_paper_config


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "a+b mod 113, 30% train: Nanda et al.'s transformer vs flax_transformer"
  c.summary = "compare"
  c.runs = ml_collections.ConfigDict({
      "transformer": grokking_paper_config(steps=8000),
      "flax_transformer": grokking_paper_config(**{
          "steps": 5000, "model.name": "flax_transformer", "optim.warmup_steps": 0,
          "name": "a+b mod 113, flax_transformer, 30% train"}),
  })
  c.compare = ml_collections.ConfigDict({name: (name,) for name in c.runs})
  c.plot = ("test/accuracy", "collapse/mir", "collapse/hdr", "sample/mir", "sample/hdr",
            "sample/entropy_features", "sample/entropy_head", "collapse/entropy_means")
  return c
