"""CMA fine-tuning (Song et al. 2024): CE vs CE + CMA when a pretrained CNN is fine-tuned.

  ncjax study --config experiments/cma_finetune.py --workdir runs/cma

Offline default: scikit-learn's digits. ``pretrain`` trains the digits CNN on the source
classes 0-4; ``ce`` and ``cma`` start from it (backbone kept, head new) and fine-tune on
the target classes 5-9 from 10 train images per class (few-shot, so that the loss
matters), five seeds each as one vmapped state, tested on every target test image.
``cma`` uses (1 - 0.3) CE + 0.3 CMA with the head rows as class embeddings. Any TFDS
dataset works the same way: ``--config.runs.pretrain.data.name=cifar100`` (and the same
for ``ce`` and ``cma``), with ``data.classes`` picking the source and target classes.

RESULT (filled in below from a measured run).
"""

from ncjax.train.config import base_config

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


def digits_cnn(classes, **overrides):
  """The digits CNN recipe of experiments/digits.py on a subset of the classes."""
  c = base_config()
  c.task = "classification"
  c.data.name = "digits"
  c.data.classes = classes
  c.model.name = "cnn"
  c.model.kwargs = {"channels": (32, 64), "features": 128, "head_bias": True}
  c.optim.name = "sgd"
  c.optim.schedule = "cosine"
  c.optim.decoupled_weight_decay = False
  c.update(dict(lr=0.05, weight_decay=5e-3, batch_size=128, steps=1500, metrics_every=250,
                checkpoint_every=500, snapshots=10, sample_size=256))
  c.optim.warmup_steps = 50
  c.loss.label_smoothing = 0.1
  for key, value in overrides.items():
    node, _, leaf = key.rpartition(".")
    (c if not node else c[node])[leaf] = value
  return c


def finetune(**overrides):
  return digits_cnn(TARGET, **{
      "name": "fine-tune on digits 5-9", "init_from": "@pretrain", "num_seeds": 5,
      "data.train_per_class": 10, "batch_size": 50, "steps": 300, "lr": 0.02,
      "metrics_every": 50, "checkpoint_every": 100, "snapshots": 5, "sample_size": 50,
      "optim.warmup_steps": 0, "loss.label_smoothing": 0.0, "weight_decay": 5e-4,
      **overrides})


def get_config():
  import ml_collections

  c = ml_collections.ConfigDict()
  c.name = "CMA fine-tuning, digits 0-4 -> 5-9 (10 per class)"
  c.summary = "compare"
  c.compare = ("ce", "cma")
  c.runs = ml_collections.ConfigDict({
      "pretrain": digits_cnn(SOURCE, name="pretrain on digits 0-4"),
      "ce": finetune(),
      "cma": finetune(**{"loss.cma_lam": 0.3}),
  })
  return c
