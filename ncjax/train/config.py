"""The base grokking config: every key the trainer reads, with its default."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Defaults for ``ncjax train``; experiment files override what they change."""
  c = ml_collections.ConfigDict()
  c.name = ""
  c.seed = 0
  c.num_seeds = 1  # S > 1 trains seeds seed..seed+S-1 as one vmapped state
  # Task: all pairs (a, b) mod p, labelled (a op b) mod p.
  c.modulus = 97
  c.operation = "add"  # add | sub | mul | div | x2xyy2
  c.train_fraction = 0.5
  # Model: "mlp" (embedding MLP) or "transformer" (one layer); kwargs go to the module.
  c.model = "mlp"
  c.model_kwargs = ml_collections.ConfigDict({"embed_dim": 128, "hidden_dim": 512})
  # Optimisation: AdamW, full batch when batch_size is None.
  c.steps = 3000
  c.batch_size = ml_collections.config_dict.placeholder(int)
  c.lr = 1e-3
  c.betas = (0.9, 0.98)
  c.weight_decay = 1.0
  # Metrics and checkpoints.
  c.metrics_every = 100
  c.sample_size = 512  # train samples for the sample-level MIR/HDR (dense n x n Gram)
  c.snapshots = 40  # log-spaced trajectory snapshots, kept forever
  c.checkpoint_every = 500  # resume points
  c.keep_checkpoints = 2  # latest resume points kept
  return c
