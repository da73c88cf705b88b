"""``ncjax train --config FILE --workdir DIR [--config.KEY=VALUE ...]`` and
``ncjax analyze DIR [--metrics NAME,...] [--split train|test] [--chunk_size K]``."""

from __future__ import annotations

import sys

import numpy as np

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumed if it exists).")
_METRICS = flags.DEFINE_list(
    "metrics", None, "analyze: ncjax functions to evaluate (e.g. nc1,vci,mir,matrix_entropy); "
    "default: exactly the metrics training logs.")
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "test"],
                           "analyze: whose features the named --metrics see.")
_CHUNK = flags.DEFINE_integer("chunk_size", 16, "analyze: snapshots per vmapped call.",
                              lower_bound=1)

USAGE = ("usage: ncjax train --config FILE --workdir DIR [--config.KEY=VALUE ...]\n"
         "       ncjax analyze DIR [--metrics NAME,...] [--split train|test]")


def _train() -> None:
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError("train: --config and --workdir are required.\n" + USAGE)
  from ncjax.train import NonFiniteLoss, train  # after flag parsing: fast --help and errors

  try:
    records = train(_CONFIG.value, _WORKDIR.value)
  except NonFiniteLoss as e:
    sys.exit(f"ncjax: {e}")
  except KeyboardInterrupt as e:
    print(f"\nncjax: {e or 'interrupted'}", file=sys.stderr)
    sys.exit(130)
  last = records[-1]
  acc = {k: float(np.median(last[f"{k}/accuracy"])) for k in ("train", "test")}  # of seeds
  print(f"step {last['step']}: train acc {acc['train']:.3f}, "
        f"test acc {acc['test']:.3f}; wrote {_WORKDIR.value}/metrics.jsonl, "
        f"curves.png, checkpoints/")


def _analyze(workdir: str) -> None:
  from ncjax.analysis.analyze import analyze

  try:
    records = analyze(workdir, _METRICS.value, _SPLIT.value, _CHUNK.value)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f"ncjax analyze: {e}")
  print(f"{len(records)} snapshots (steps {records[0]['step']}..{records[-1]['step']}); "
        f"wrote {workdir}/analysis.jsonl, analysis.png")


def _main(argv: list[str]) -> None:
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  if argv[1:2] == ["train"] and len(argv) == 2:
    _train()
  elif argv[1:2] == ["analyze"] and len(argv) == 3:
    _analyze(argv[2])
  else:
    raise app.UsageError(USAGE)


def main() -> None:
  app.run(_main)
