"""Every logged metric key and every list of metric names, defined once (no imports).

A logged key is ``<prefix>/<name>``: the evaluator (:mod:`ncjax.train.evaluate`) writes
them, the loop, the plots, the studies and ``ncjax analyze`` read them. Beside a metric
its chance level and simplex-ETF value (:mod:`ncjax.baselines`) carry the suffixes
:data:`NULL`, :data:`NULL_STD` and :data:`ETF`. Adding a metric to a figure or a list is
a line here.

>>> keyed(COLLAPSE, {"nc1": 0.5})
{'collapse/nc1': 0.5}
>>> key(TEST_COLLAPSE, "vci"), layer(2)
('test_collapse/vci', 'layer2')
"""

from __future__ import annotations

# --- prefixes ---
TRAIN, TEST = "train", "test"  # a split's loss and accuracy
COLLAPSE, TEST_COLLAPSE = "collapse", "test_collapse"  # a split's collapse metrics
SAMPLE = "sample"  # features z_i against head rows w_{y_i}, a fixed train subset
WEIGHTS = "weights"  # progress measures of the parameters
FOURIER = "fourier"  # the grokking task's progress measures (add only)
LAYER = "layer"  # layer<i>/<name>: a block's pooled output (i = 1, 2, ...)

SPLITS = {TRAIN: COLLAPSE, TEST: TEST_COLLAPSE}  # split -> its collapse prefix
SPLIT_OF = {TRAIN: TRAIN, COLLAPSE: TRAIN, TEST: TEST, TEST_COLLAPSE: TEST}  # prefix -> split

# --- suffixes of the reference values logged beside a metric ---
NULL, NULL_STD, ETF = "_null", "_null_std", "_etf"
REFERENCES = (NULL, NULL_STD, ETF)


def key(prefix: str, name: str) -> str:
  """``prefix/name``: the one way a key is made."""
  return f"{prefix}/{name}"


def keyed(prefix: str, values: dict) -> dict:
  """``{prefix/name: value}`` of ``{name: value}``."""
  return {key(prefix, name): v for name, v in values.items()}


def layer(i: int) -> str:
  """The prefix of block ``i``'s metrics (1-based)."""
  return f"{LAYER}{i}"


# --- single keys ---
LOSS, ACCURACY = "loss", "accuracy"
TRAIN_LOSS, TRAIN_ACCURACY = key(TRAIN, LOSS), key(TRAIN, ACCURACY)
TEST_LOSS, TEST_ACCURACY = key(TEST, LOSS), key(TEST, ACCURACY)
STEP_LOSS = key(TRAIN, "step_loss")  # losses.jsonl: every step's training-batch loss
WEIGHT_NORM = key(WEIGHTS, "norm")

# --- metric names (unprefixed) ---
LAYER_METRICS = ("nc1", "vci", "cdnv", "entropy_means", "effective_rank")  # per block
SAMPLE_METRICS = ("mir", "hdr", "entropy_features", "entropy_head")
# Chance levels (ncjax.baselines): of Gaussian head rows and means; of permuted labels.
GAUSSIAN_METRICS = ("entropy_head", "entropy_means", "mi", "mir", "hdr", "nc3", "unc3")
PERMUTATION_METRICS = ("nc1", "vci", "cdnv", "equinorm_means", "equiangular_means",
                       "maxangle_means", "gnc2")
ETF_METRICS = ("entropy_head", "entropy_means", "mi", "mir", "hdr")  # closed form at an ETF
LOG_SCALE = ("nc1", "vci", "cdnv")  # drawn on a log axis

# --- the keys each figure, table and progress bar shows ---
PROGRESS = (TRAIN_ACCURACY, TEST_ACCURACY, key(COLLAPSE, "mir"), key(COLLAPSE, "nc1"))
CURVES = (  # a run's curves.png: (panel, keys, y scale)
    (ACCURACY, (TRAIN_ACCURACY, TEST_ACCURACY), "linear"),
    (COLLAPSE, (key(COLLAPSE, "nc1"), key(COLLAPSE, "vci"), key(TEST_COLLAPSE, "nc1"),
                key(TEST_COLLAPSE, "vci")), "log"),
    ("ratio", (key(COLLAPSE, "mir"), key(COLLAPSE, "hdr"), key(SAMPLE, "mir"),
               key(SAMPLE, "hdr")), "linear"))
SWEEP = (TEST_ACCURACY, key(COLLAPSE, "mir"), key(COLLAPSE, "hdr"), key(COLLAPSE, "nc1"),
         key(COLLAPSE, "vci"))  # a vmapped sweep's final values
COMPARE = (TEST_ACCURACY, key(COLLAPSE, "mir"), key(COLLAPSE, "hdr"), key(SAMPLE, "mir"),
           key(SAMPLE, "hdr"))  # the compare study's default panels
POINTS = (TRAIN_LOSS, TEST_LOSS, TEST_ACCURACY,
          *keyed(COLLAPSE, dict.fromkeys(("mir", "hdr", "nc1", "vci", "entropy_means"))))
