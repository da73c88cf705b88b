"""The base config: every key the trainer reads, grouped by concern, with its default.

Experiment files (``experiments/*.py``) start from :func:`base_config` and override what
they change; ``--config.KEY=VALUE`` overrides from the command line. An unknown key is an
error (the config is locked). :func:`validate` checks the keys every task shares; each task
checks its own branch (``ncjax.tasks.validate`` runs both) before anything runs.
"""

from __future__ import annotations

import functools

import ml_collections
import numpy as np

from ncjax.models import LAYERED

placeholder = ml_collections.config_dict.placeholder


def base_config() -> ml_collections.ConfigDict:
  """Defaults for ``ncjax train`` (the grokking task)."""
  c = ml_collections.ConfigDict()
  c.name = ""  # title of the plots
  c.task = "grokking"  # a key of ncjax.tasks.TASKS: grokking | classification

  # --- run: the same meaning in every task ---
  c.seed = 0  # seed of the first run: initialisation, data split and order
  c.num_seeds = 1  # S > 1 trains seeds seed..seed+S-1 as one vmapped state
  c.init_seed = placeholder(int)  # set: every member starts from this initialisation
  # A vmapped sweep: every value of sweep_values (of the key sweep_key, one of SWEEPABLE)
  # times every seed is one member of the state (value-major); see member_seeds.
  c.sweep_key = ""
  c.sweep_values = ()
  c.steps = 3000  # optimiser steps
  c.batch_size = placeholder(int)  # None: full batch (grokking only)
  c.lr = 1e-3  # peak learning rate
  c.weight_decay = 1.0  # decoupled (AdamW-style) or L2, see optim.decoupled_weight_decay

  # --- data ---
  c.data = ml_collections.ConfigDict()
  c.data.modulus = 97  # grokking: all pairs (a, b) mod p, labelled (a op b) mod p
  c.data.operation = "add"  # grokking: a key of ncjax.data.OPERATIONS, or s5 (modulus unused)
  c.data.train_fraction = 0.5  # grokking: fraction of pairs in the train split
  c.data.key_frequencies = 5  # grokking add: K of the Fourier progress measures
  c.data.name = "digits"  # digits | digits_28 | synthetic | fashion_mnist | a TFDS name
  c.data.data_dir = placeholder(str)  # classification: TFDS data_dir (None: TFDS default)
  c.data.idx_dir = placeholder(str)  # fashion_mnist: IDX files (None: a prepared TFDS copy,
  # else Debian's /usr/share/datasets/fashion-mnist)
  c.data.augment = False  # classification: random crop (4-pixel padding) and flip
  c.data.eval_batch_size = 512  # classification: batch of the whole-split metrics pass
  c.data.classes = placeholder(tuple)  # classification: keep these labels (relabelled 0..k-1)
  c.data.train_per_class = placeholder(int)  # classification: first N train images per class
  c.data.read_threads = 4  # classification: threads reading a batch's records
  c.data.prefetch = 2  # batches built ahead on a background thread (double buffering)

  # --- devices: one mesh over every device of every process (ncjax.train.meshes) ---
  c.mesh = ml_collections.ConfigDict()
  c.mesh.members = 1  # device groups the members (seeds x swept values) are split over
  c.mesh.data = placeholder(int)  # devices per group, over which each batch is split
  # (None: all devices / mesh.members)

  # --- model ---
  c.model = ml_collections.ConfigDict()
  c.model.name = "mlp"  # a key of ncjax.models.MODELS: mlp, transformer, cnn, wrn, ...
  c.model.kwargs = ml_collections.ConfigDict({"embed_dim": 128, "hidden_dim": 512})
  c.model.init_scale = 1.0  # every initial parameter times this (Omnigrok's alpha)
  c.model.dtype = "float32"  # compute dtype: float32 | bfloat16 (parameters stay float32;
  # logits and features reach the loss and the metrics in float32)

  # --- optimiser ---
  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"  # adamw | sgd (SGD with momentum)
  c.optim.betas = (0.9, 0.98)  # adamw
  c.optim.momentum = 0.9  # sgd
  c.optim.nesterov = True  # sgd
  c.optim.schedule = "constant"  # constant | cosine (decay to 0 at `steps`) | step (x0.1
  # at 1/3 and 2/3 of `steps`, Papyan et al. 2020)
  c.optim.warmup_steps = 0  # linear warm-up from 0
  c.optim.decoupled_weight_decay = True  # False: L2 penalty added to the gradient
  c.optim.grad_clip = placeholder(float)  # global-norm clipping
  c.optim.grokfast = "none"  # none | ema | ma: Grokfast gradient filter before the optimiser
  c.optim.grokfast_lamb = 2.0  # g + lamb * slow(g)
  c.optim.grokfast_alpha = 0.98  # ema: momentum of the gradient EMA
  c.optim.grokfast_window = 100  # ma: number of past gradients averaged

  # --- loss ---
  c.loss = ml_collections.ConfigDict()
  c.loss.label_smoothing = 0.0  # cross-entropy target (1 - s) one_hot + s / C
  c.loss.temperature = 1.0  # cross-entropy of logits / temperature
  c.loss.cma_lam = 0.0  # (1 - lam) CE + lam CMA loss (head rows as class embeddings)
  c.loss.info_lam = 0.0  # information regulariser: -info_lam * I(G(f); G(w_y)) ...
  c.loss.info_lam2 = 0.0  # ... + info_lam2 * |H(G(f)) - H(G(w_y))|

  # --- initialisation ---
  c.init_from = placeholder(str)  # run directory: start from its newest checkpoint (head new)
  c.freeze = "none"  # none | backbone (train only the head: a linear probe)

  # --- metrics, logging and checkpoints: the same meaning in every task ---
  c.metrics_every = 100  # steps between metrics passes (train and test splits)
  c.layer_metrics = False  # NC1, VCI, CDNV, entropy, effective rank after every block
  c.sample_size = 512  # train samples for the sample-level MIR/HDR (dense n x n Gram)
  c.snapshots = 40  # log-spaced trajectory snapshots, kept forever
  c.checkpoint_every = 500  # resume points
  c.keep_checkpoints = 2  # latest resume points kept
  # A train step, evaluation or save that runs longer than max(floor, multiple x its
  # median) seconds ends the run (a stall: deadlock, lost peer) with its thread stacks in
  # DIR/stall-*.txt and exit status 75; rerunning resumes. floor 0 turns it off.
  c.watchdog_floor = 600.0
  c.watchdog_multiple = 50.0
  return c


DTYPES = ("float32", "bfloat16")  # compute dtypes of config.model.dtype

# Config keys a vmapped sweep can vary: values that enter the loss's arithmetic only.
SWEEPABLE = ("loss.temperature", "loss.label_smoothing")


def member_seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The seed of each member of the vmapped state (its data split and order, and its
  initialisation unless ``init_seed`` is set): ``seed + i`` for the ``num_seeds`` seeds,
  repeated for every value of ``sweep_values`` (value-major)."""
  repeats = len(config.sweep_values) or 1
  return [config.seed + i for _ in range(repeats) for i in range(config.num_seeds)]


def swept_loss_options(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
  """``{loss option: (M,) float32}``, each member's value of the swept key ({} without a
  sweep), for :func:`ncjax.train.state.make_train_step`."""
  if not config.sweep_key:
    return {}
  values = np.repeat(np.asarray(config.sweep_values, np.float32), config.num_seeds)
  return {config.sweep_key.split(".")[1]: values}


# Keys whose value may differ when an existing run directory is resumed.
# The device layout may change between a run and its resume (8 devices -> 1, 1 process -> 2).
RESUMABLE_CHANGES = frozenset({"steps", "name", "mesh.members", "mesh.data",
                               "data.read_threads", "data.prefetch", "watchdog_floor",
                               "watchdog_multiple"})

_POSITIVE_INTS = ("num_seeds", "steps", "metrics_every", "checkpoint_every",
                  "keep_checkpoints", "sample_size", "mesh.members", "data.read_threads",
                  "data.prefetch")


def require(config: ml_collections.ConfigDict, ok: bool, key: str, rule: str) -> None:
  """Raises ValueError ``config.<key> must be <rule>, got <value>`` unless ``ok``."""
  if not ok:
    value = functools.reduce(getattr, key.split("."), config)
    raise ValueError(f"config.{key} must be {rule}, got {value!r}.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the first key with an invalid value, of the keys every task
  shares (a task's own branch: ``ncjax.tasks.validate``)."""
  need = functools.partial(require, config)
  need(config.watchdog_floor >= 0, "watchdog_floor", ">= 0 seconds (0: no watchdog)")
  need(config.watchdog_multiple >= 1, "watchdog_multiple", ">= 1")
  for key in _POSITIVE_INTS:
    value = functools.reduce(getattr, key.split("."), config)
    need(isinstance(value, int) and value >= 1, key, "an int >= 1")
  need(config.mesh.data is None or (isinstance(config.mesh.data, int) and config.mesh.data >= 1),
       "mesh.data", "None or an int >= 1")
  need(isinstance(config.snapshots, int) and config.snapshots >= 0, "snapshots", "an int >= 0")
  need(isinstance(config.seed, int) and config.seed >= 0, "seed", "an int >= 0")
  need(config.init_seed is None or config.init_seed >= 0, "init_seed", "None or an int >= 0")
  need(config.batch_size is None or config.batch_size >= 1, "batch_size", "None or >= 1")
  need(config.lr > 0, "lr", "> 0")
  need(config.model.init_scale > 0, "model.init_scale", "> 0")
  need(config.model.dtype in DTYPES, "model.dtype", " or ".join(DTYPES))
  need(config.weight_decay >= 0, "weight_decay", ">= 0")
  need(config.optim.name in ("adamw", "sgd"), "optim.name", "adamw or sgd")
  need(config.optim.schedule in ("constant", "cosine", "step"), "optim.schedule",
       "constant, cosine or step")
  need(0 <= config.optim.warmup_steps < config.steps, "optim.warmup_steps", "in [0, steps)")
  need(config.optim.grokfast in ("none", "ema", "ma"), "optim.grokfast", "none, ema or ma")
  need(config.optim.grokfast_lamb >= 0, "optim.grokfast_lamb", ">= 0")
  need(0 <= config.optim.grokfast_alpha < 1, "optim.grokfast_alpha", "in [0, 1)")
  need(isinstance(config.optim.grokfast_window, int) and config.optim.grokfast_window >= 1,
       "optim.grokfast_window", "an int >= 1")
  need(0 <= config.loss.label_smoothing < 1, "loss.label_smoothing", "in [0, 1)")
  need(config.loss.temperature > 0, "loss.temperature", "> 0")
  need(0 <= config.loss.cma_lam <= 1, "loss.cma_lam", "in [0, 1]")
  need(config.loss.info_lam >= 0, "loss.info_lam", ">= 0")
  need(config.loss.info_lam2 >= 0, "loss.info_lam2", ">= 0")
  need(config.freeze in ("none", "backbone"), "freeze", "none or backbone")
  need(not config.layer_metrics or config.model.name in LAYERED, "layer_metrics",
       f"False unless model.name is one of {LAYERED}")
  need(config.sweep_key in ("", *SWEEPABLE), "sweep_key", f"empty or one of {SWEEPABLE}")
  need(bool(config.sweep_key) == bool(config.sweep_values), "sweep_values",
       "non-empty exactly when sweep_key is set")
  need(len(set(config.sweep_values)) == len(config.sweep_values), "sweep_values", "distinct")
  for value in config.sweep_values:  # each member's config must be valid on its own
    member = ml_collections.ConfigDict(config.to_dict())
    member.sweep_key, member.sweep_values = "", ()
    member.update_from_flattened_dict({config.sweep_key: value})
    try:
      validate(member)
    except ValueError as e:
      raise ValueError(f"config.sweep_values: {value!r}: {e}") from e
