"""VCI vs transferability (Xu & Liu, ICML 2023) as a single-factor design on CPU.

  ncjax study --config experiments/vci_transfer.py --workdir runs/transfer

Source: Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat), the first
500 train images per class, tested on all 5,000 of their test images. Base recipe: the
Fashion-MNIST CNN made smaller (conv channels (8, 16), 64-d ReLU features), SGD with
Nesterov momentum, lr 0.05, 20 warm-up steps then cosine decay, L2 weight decay 5e-4, no
label smoothing, temperature 1, batch 64, 300 steps (~8 epochs), 3 seeds as one vmapped
state. Each other recipe changes exactly one factor (:data:`FACTORS`): weight decay,
label smoothing, softmax temperature, training length (steps, so the length of the
terminal phase) and width (conv channels). Smaller and shorter than the paper's
ImageNet ResNets so that the factorial fits 60 min on 2 CPU cores.

Frozen eval-mode features of every seed; a reference probe (scikit-learn
LogisticRegressionCV: multinomial, L-BFGS, standardised features, C from 1e-3 to 1 (4
values) by 3-fold CV accuracy) in three regimes:
- ``in_domain``: Fashion-MNIST classes 5-9 (sandal, shirt, sneaker, bag, ankle boot),
  probe on the first 500 train images per class, tested on all 5,000 test images;
- ``few_shot``: the same classes, 20 train images per class, 10 draws (the same draws for
  every model), tested on all 5,000 test images;
- ``out_of_domain``: a different dataset, scikit-learn's digits in MNIST's 28 x 28 frame
  (``digits_28``), probe on all 1,297 train images, tested on 500: the paper's regime
  (full-data linear probes of pretrained features on other datasets).
VCI on the source train and test splits and on each target's train features; Spearman's
rho between recipe means (3 seeds) of VCI (source train) and probe accuracy, with a 95%
interval resampling seeds within recipes.

Measured 2026-12-04 on 2 CPU cores shared with other jobs (load average 10-13): 36.6 min.
Spearman rho, VCI (source train) vs probe accuracy, 11 recipes x 3 seeds (95% interval):
in_domain -0.01 (-0.23 to +0.20), few_shot -0.07 (-0.26 to +0.27), out_of_domain +0.05
(-0.28 to +0.26): the paper's relation is not reproduced here, with no sign either way;
VCI spans only 0.17-0.24 across these small models. Tables and figure: docs/transfer.md.
"""

import ml_collections
from common import fashion_mnist_config

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
SEEDS = 3

# recipe name -> the one factor it changes against the base recipe (dotted key: value).
FACTORS = {
    "base": {},
    "wd_5e-5": {"weight_decay": 5e-5},
    "wd_5e-3": {"weight_decay": 5e-3},
    "ls_01": {"loss.label_smoothing": 0.1},
    "ls_03": {"loss.label_smoothing": 0.3},
    "temp_05": {"loss.temperature": 0.5},
    "temp_2": {"loss.temperature": 2.0},
    "steps_100": {"steps": 100},
    "steps_900": {"steps": 900},
    "width_half": {"model.kwargs.channels": (4, 8)},
    "width_double": {"model.kwargs.channels": (16, 32)},
}


def source_recipe(name: str, **factor) -> ml_collections.ConfigDict:
  """The base recipe on the source classes, then ``factor``; metrics only at the end."""
  c = fashion_mnist_config(**{
      "data.classes": SOURCE, "data.train_per_class": 500, "model.kwargs.channels": (8, 16),
      "model.kwargs.features": 64, "weight_decay": 5e-4, "loss.label_smoothing": 0.0,
      "optim.warmup_steps": 20, "batch_size": 64, "steps": 300, "num_seeds": SEEDS, "snapshots": 0, "sample_size": 256,
      "metrics_every": 10_000, "checkpoint_every": 10_000, **factor})
  c.name = f"source recipe {name}"
  return c


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "VCI of Fashion-MNIST 0-4 features vs linear-probe transfer"
  c.summary = "transfer"
  c.base = "base"
  c.runs = ml_collections.ConfigDict(
      {name: source_recipe(name, **factor) for name, factor in FACTORS.items()})
  c.targets = ml_collections.ConfigDict({
      "fashion_5_9": {"name": "fashion_mnist", "classes": TARGET, "train_per_class": 500},
      "digits_28": {"name": "digits_28"}})
  c.regimes = ml_collections.ConfigDict({
      "in_domain": {"target": "fashion_5_9", "shots": 0},
      "few_shot": {"target": "fashion_5_9", "shots": 20, "draws": 10},
      "out_of_domain": {"target": "digits_28", "shots": 0}})
  c.probe = ml_collections.ConfigDict(
      {"cs": (1e-3, 1e-2, 1e-1, 1.0), "folds": 3, "max_iter": 1000})
  return c
