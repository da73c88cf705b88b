"""Global magnitude pruning of a trained digits CNN: MIR, HDR, NC1 and accuracy against
sparsity, as pruned and after a short fine-tune.

  ncjax study --config experiments/pruning.py --workdir runs/pruning

One digits CNN (``digits_cnn_config``, 3,000 steps), then the fraction s of its
smallest-magnitude weights (every conv kernel and dense matrix, the head's too, pooled)
set to 0 for each s in ``sparsities``; the pruned networks are one vmapped state of six
members, measured by the trainer's evaluator (BatchNorm statistics recomputed), then
fine-tuned together for ``finetune.steps`` steps of SGD at a constant lr (pruned weights
held at 0) and measured again. Writes ``pruning.jsonl`` and ``pruning.png``.

Measured on 2 CPU cores: 2 min 58 s. Sparsity 0, 0.5, 0.7, 0.8, 0.9, 0.95, as pruned:
test accuracy 99.0, 99.4, 99.0, 97.4, 51.8, 20.0%; HDR 0.003, 0.004, 0.012, 0.022, 0.141,
0.259; NC1 0.027, 0.038, 0.086, 0.21, 1.06, 4.98; MIR 0.950 -> 0.943 only. After 200
fine-tune steps: test accuracy 99.0, 99.0, 99.2, 99.0, 97.0, 81.0%; HDR 0.003, 0.003,
0.006, 0.012, 0.068, 0.212. HDR and NC1 track the damage; MIR barely moves until 95%.
Figure: docs/pruning.png.
"""

import ml_collections
from common import digits_cnn_config


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "digits CNN: global magnitude pruning"
  c.summary = "pruning"
  c.sparsities = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
  c.finetune = ml_collections.ConfigDict(
      {"steps": 200, "lr": 0.01, "optim": {"schedule": "constant"}})
  c.runs = ml_collections.ConfigDict({"digits": digits_cnn_config(snapshots=5)})
  return c
