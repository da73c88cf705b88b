"""VCI vs transferability (Xu & Liu, ICML 2023): does the variability collapse of a pretrained
model's features predict how well they transfer under linear probing?

  ncjax study --config experiments/vci_transfer.py --workdir runs/transfer
  ncjax study --config experiments/vci_transfer.py:fashion_mnist --workdir runs/transfer_fm

Offline default: scikit-learn's digits (one seed per model); ``:fashion_mnist`` runs the
Fashion-MNIST CNN recipe with three seeds per model (each probe seed from its source
seed; one point per model and seed, Spearman rho with a paired-bootstrap 95% interval).
Eight CNNs are pretrained on the source classes
0-4 with recipes that collapse their features to different degrees (label smoothing,
weight decay, training length, softmax temperature); for each, VCI and NC1 of its
penultimate features on the source train split, then a linear probe (backbone frozen,
BatchNorm in eval mode, a new head trained by SGD for a fixed budget) on the target
classes 5-9 from 20 train images per class, tested on every target test image. Writes
``transfer.jsonl``, ``summary.json`` (Spearman rho) and ``transfer.png``. Any TFDS
dataset works the same way (``--config.runs.<name>.data.name=...`` for each run).

Measured on 2 CPU cores, digits (cold compilation cache): 10 min 6 s. VCI 0.0024-0.051 across the
eight models, probe accuracy 72.6-91.1%; Spearman rho with probe accuracy: VCI +0.17,
NC1 +0.22. The most collapsed model transfers worst, as Xu & Liu predict, but the
relation is weak and not monotone. Fashion-MNIST (3 seeds per model): 79 min at nice 19 beside other
work; Spearman rho VCI -0.46 (95% CI -0.74 to -0.03), NC1 -0.31 (-0.65 to +0.10): lower VCI
transferred better, the opposite of Xu & Liu. Table and figure:
docs/transfer.md.
"""

import ml_collections

from common import cnn_recipe

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
SEEDS = {"digits": 1, "fashion_mnist": 3}

# name -> overrides of the source recipe (SGD, L2 weight decay 5e-4, 600 steps).
VARIANTS = {
    "base": {},
    "short": {"steps": 150},
    "wd5e-3": {"weight_decay": 5e-3},
    "ls01": {"weight_decay": 5e-3, "loss.label_smoothing": 0.1},
    "ls03": {"weight_decay": 5e-3, "loss.label_smoothing": 0.3},
    "long_ls01": {"weight_decay": 5e-3, "loss.label_smoothing": 0.1, "steps": 2000},
    "temp05": {"loss.temperature": 0.5},
    "temp3": {"loss.temperature": 3.0},
}


def get_config(data="digits"):
  def cnn(classes, overrides):
    """The recipe on ``classes`` with L2 weight decay 5e-4, no label smoothing, 600 steps,
    then ``overrides``; metrics only at the end and at four snapshots."""
    c = cnn_recipe(data, **{
        "data.classes": classes, "data.eval_batch_size": 512 if data == "digits" else 1000,
        "weight_decay": 5e-4, "loss.label_smoothing": 0.0, "optim.warmup_steps": 20,
        "steps": 600, "snapshots": 4, "sample_size": 256, "num_seeds": SEEDS[data],
        **overrides})
    c.update(dict(metrics_every=c.steps, checkpoint_every=c.steps))
    return c

  def probe(source):
    return cnn(TARGET, {
        "name": f"linear probe of {source}", "init_from": f"@{source}", "freeze": "backbone",
        "data.train_per_class": 20, "batch_size": 100, "steps": 300, "lr": 0.1,
        "weight_decay": 0.0, "optim.warmup_steps": 0, "optim.schedule": "constant",
        "sample_size": 100})

  c = ml_collections.ConfigDict()
  c.name = f"VCI and NC1 of {data} 0-4 features vs linear-probe accuracy on 5-9"
  c.summary = "transfer"
  c.pairs = tuple((name, f"probe_{name}") for name in VARIANTS)
  runs = {}
  for name, overrides in VARIANTS.items():
    runs[name] = cnn(SOURCE, {"name": f"source {name}", **overrides})
    runs[f"probe_{name}"] = probe(name)
  c.runs = ml_collections.ConfigDict(runs)
  return c
