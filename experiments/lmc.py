"""Linear mode connectivity on digits: the metrics along the straight line between two
trained CNNs.

  ncjax study --config experiments/lmc.py --workdir runs/lmc

Two runs of the digits CNN recipe (``digits_cnn_config``, 1,500 steps), each training two
networks as one vmapped state: ``same_init`` from one initialisation (``init_seed``) with
two data orders, ``two_inits`` from two initialisations. Then, for each run, the
trainer's metrics (loss, accuracy, MIR, HDR, entropies, NC1, VCI, ...) at the ``alphas``
points (1 - alpha) theta_0 + alpha theta_1, evaluated as one vmapped state of 11 members,
BatchNorm statistics recomputed at each point. Writes ``lmc.jsonl``, the loss barriers
(``summary.json``) and ``lmc.png``.

Measured on 2 CPU cores: 4 min 36 s (both runs trained, then 22 interpolated points).
One initialisation, two data orders: connected, loss barrier 0.0012 (train) and 0.0008
(test), test accuracy 99.4% all along, MIR 0.954, HDR 0.008 and NC1 0.039 flat. Two
initialisations: a barrier of 1.86 (train) / 1.80 (test) in loss at alpha = 0.5, test
accuracy 99.4% -> 68.4%; at the barrier MIR(head, means) dips 0.954 -> 0.940, HDR rises
0.008 -> 0.145, NC1 0.039 -> 0.83, sample MIR 0.864 -> 0.445 and sample HDR 0.31 -> 0.86:
the information metrics mark the barrier as the loss does. Figure: docs/lmc.png.
"""

import ml_collections
from common import digits_cnn_config


def get_config():
  c = ml_collections.ConfigDict()
  c.name = "digits CNN: linear interpolation between two trained networks"
  c.summary = "lmc"
  c.alphas = tuple(i / 10 for i in range(11))
  run = lambda **kw: digits_cnn_config(**{"num_seeds": 2, "steps": 1500, "snapshots": 5,
                                          "checkpoint_every": 500, **kw})
  c.runs = ml_collections.ConfigDict({
      "same_init": run(name="one initialisation, two data orders", init_seed=0),
      "two_inits": run(name="two initialisations")})
  return c
