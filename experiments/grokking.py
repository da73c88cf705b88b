"""Grokking a+b mod 97 with an embedding MLP (the fast default).

  ncjax train --config experiments/grokking.py --workdir runs/grok

Measured on 2 CPU cores: filled in below from a real run.
"""

from ncjax.train.config import base_config


def get_config():
  c = base_config()
  c.name = "a+b mod 97, embedding MLP, 50% train"
  return c
