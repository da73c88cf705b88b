"""Global magnitude pruning of a trained digits CNN: MIR, HDR, NC1 and accuracy against
sparsity, as pruned and after a short fine-tune.

  ncjax study --config experiments/pruning.py --workdir runs/pruning

One digits CNN (``digits_cnn_config``, 3,000 steps), then the fraction s of its
smallest-magnitude weights (every conv kernel and dense matrix, the head's too, pooled)
set to 0 for each s in ``sparsities``; the pruned networks are one vmapped state of six
members, measured by the trainer's evaluator (BatchNorm statistics recomputed), then
fine-tuned together for ``finetune.steps`` steps of SGD at a constant lr (pruned weights
held at 0) and measured again. Writes ``pruning.jsonl`` and ``pruning.png``.

RESULT
"""

import ml_collections

from ncjax.train.config import digits_cnn_config


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "digits CNN: global magnitude pruning"
  c.summary = "pruning"
  c.sparsities = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
  c.finetune = ml_collections.ConfigDict(
      {"steps": 200, "lr": 0.01, "optim": {"schedule": "constant"}})
  c.runs = ml_collections.ConfigDict({"digits": digits_cnn_config(snapshots=5)})
  return c
