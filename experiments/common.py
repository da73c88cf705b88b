"""The recipes the experiment files share (each file shows what it changes).

Every recipe returns a fresh ``ml_collections.ConfigDict`` from
:func:`ncjax.train.config.base_config`; ``**overrides`` are dotted keys, as on the command
line (``digits_cnn_config(**{"loss.cma_lam": 0.3, "steps": 500})``). The CLI makes the
config file's directory importable, so an experiment file imports this one as ``common``.
"""

import ml_collections

from ncjax.train.config import base_config


def overridden(c: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
  """``c`` with the dotted ``overrides`` set (``ConfigDict.update_from_flattened_dict``)."""
  c.update_from_flattened_dict(overrides)
  return c


def digits_cnn_config(**overrides) -> ml_collections.ConfigDict:
  """The digits recipe (experiments/digits.py): a small CNN on scikit-learn's digits,
  SGD with Nesterov momentum, lr 0.05 with cosine decay after 100 warm-up steps, L2
  weight decay 5e-3, label smoothing 0.1, batch 128, 3,000 steps; ``overrides``
  dotted keys (keyword names cannot hold dots: pass ``**{"loss.cma_lam": 0.3}``)."""
  c = base_config()
  c.name = "digits, CNN, SGD (terminal phase)"
  c.task = "classification"
  c.data.name = "digits"
  c.data.eval_batch_size = 650  # the 1,297 train images in two batches
  c.model.name = "cnn"
  c.model.kwargs = ml_collections.ConfigDict(
      {"channels": (32, 64), "features": 128, "head_bias": True})
  c.optim.name = "sgd"
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 100
  c.optim.decoupled_weight_decay = False  # L2, as in the collapse literature's SGD
  c.loss.label_smoothing = 0.1
  c.update(dict(lr=0.05, weight_decay=5e-3, batch_size=128, steps=3000, metrics_every=100,
                checkpoint_every=500, snapshots=30, sample_size=500))
  return overridden(c, overrides)


def fashion_mnist_config(**overrides) -> ml_collections.ConfigDict:
  """The Fashion-MNIST recipe (experiments/fashion_mnist.py): a CNN with (16, 32) conv
  channels on a class-balanced subset of 500 train images per class (the full test
  split), SGD with Nesterov momentum, lr 0.05 with cosine decay after 100 warm-up steps,
  L2 weight decay 5e-3, no label smoothing, batch 128, 3,000 steps (~77 epochs);
  ``overrides`` dotted keys."""
  c = digits_cnn_config()
  c.name = "Fashion-MNIST (500 per class), CNN, SGD (terminal phase)"
  c.data.name = "fashion_mnist"
  c.data.train_per_class = 500
  c.data.eval_batch_size = 1000
  c.model.kwargs.channels = (16, 32)
  c.loss.label_smoothing = 0.0
  c.update(dict(weight_decay=5e-3, steps=3000, metrics_every=250, checkpoint_every=1000,
                snapshots=16, sample_size=1000))
  return overridden(c, overrides)


def cnn_recipe(data: str, **overrides) -> ml_collections.ConfigDict:
  """The CNN recipe of a dataset, ``digits`` (:func:`digits_cnn_config`) or
  ``fashion_mnist`` (:func:`fashion_mnist_config`), for studies run on either."""
  recipes = {"digits": digits_cnn_config, "fashion_mnist": fashion_mnist_config}
  if data not in recipes:
    raise ValueError(f"data must be one of {sorted(recipes)}, got {data!r}.")
  return recipes[data](**overrides)


def grokking_paper_config(**overrides) -> ml_collections.ConfigDict:
  """The paper's grokking setting (Song et al. 2024, after Nanda et al. 2023): a+b mod
  113, 30% train, Nanda et al.'s one-layer transformer (d_model 128, 4 heads, MLP 512),
  full batch, AdamW lr 1e-3 after a 10-step warm-up, betas (0.9, 0.98), weight decay 1;
  ``overrides`` dotted keys."""
  c = base_config()
  c.name = "a+b mod 113, transformer, 30% train (paper)"
  c.data.modulus = 113
  c.data.train_fraction = 0.3
  c.model.name = "transformer"
  c.model.kwargs = ml_collections.ConfigDict({"d_model": 128, "num_heads": 4, "mlp_dim": 512})
  c.optim.warmup_steps = 10  # the reference: lr * min(step / 10, 1)
  c.update(dict(steps=40_000, metrics_every=200, checkpoint_every=2000))
  return overridden(c, overrides)


def cifar_wrn_config(dataset: str, width: int) -> ml_collections.ConfigDict:
  """The first paper's supervised setting: a WRN-28-``width`` on a TFDS CIFAR dataset,
  SGD with Nesterov momentum, lr 0.03 with cosine decay, weight decay 5e-4 (L2), batch
  64, 200 epochs, standard augmentation, metrics once an epoch."""
  c = base_config()
  epoch = 50_000 // 64
  c.name = f"{dataset}, WRN-28-{width}"
  c.task = "classification"
  c.data.name = dataset
  c.data.augment = True
  c.model.name = "wrn"
  c.model.kwargs = ml_collections.ConfigDict({"depth": 28, "width": width})
  c.optim.name = "sgd"
  c.optim.schedule = "cosine"
  c.optim.decoupled_weight_decay = False
  c.update(dict(lr=0.03, weight_decay=5e-4, batch_size=64, steps=200 * epoch,
                metrics_every=epoch, checkpoint_every=5 * epoch, snapshots=40, sample_size=1024))
  return c
