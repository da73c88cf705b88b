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

RESULT
"""

import ml_collections

from ncjax.train.config import digits_cnn_config


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
