"""``ncjax train --config FILE --workdir DIR [--config.KEY=VALUE ...]``."""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumed if it exists).")

COMMANDS = ("train",)


def _main(argv: list[str]) -> None:
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"usage: ncjax {{{'|'.join(COMMANDS)}}} --config FILE --workdir DIR")
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError("--config and --workdir are required.")
  from ncjax.train import NonFiniteLoss, train  # after flag parsing: fast --help and errors

  try:
    records = train(_CONFIG.value, _WORKDIR.value)
  except NonFiniteLoss as e:
    sys.exit(f"ncjax: {e}")
  except KeyboardInterrupt as e:
    print(f"\nncjax: {e or 'interrupted'}", file=sys.stderr)
    sys.exit(130)
  last = records[-1]
  print(f"step {last['step']}: train acc {last['train/accuracy']:.3f}, "
        f"test acc {last['test/accuracy']:.3f}; wrote {_WORKDIR.value}/metrics.jsonl, "
        f"curves.png, checkpoints/")


def main() -> None:
  app.run(_main)
