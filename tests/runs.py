"""Helpers for tests that run training: the CLI command, a run's log, its final state,
and a byte-for-byte picture of a run directory."""

import hashlib
import json
import os
import sys

import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_GROKKING = ["--config.data.modulus=23", "--config.model.kwargs.embed_dim=16",
                 "--config.model.kwargs.hidden_dim=32", "--config.steps=120",
                 "--config.metrics_every=20", "--config.checkpoint_every=20",
                 "--config.snapshots=6", "--config.sample_size=64"]


def ncjax_cmd(workdir, *extra, config="grokking.py", tiny=TINY_GROKKING):
  return [sys.executable, "-m", "ncjax", "train", "--config",
          os.path.join(ROOT, "experiments", config), "--workdir", str(workdir), *tiny, *extra]


def final_params(workdir):
  """(latest step, params) of a run, restored without a target (host arrays)."""
  mngr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  step = mngr.latest_step()
  state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
  mngr.close()
  return step, state["params"]


def read_log(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def tree_digest(workdir) -> dict:
  """{relative path: sha256} of every file under ``workdir`` (empty if it is missing)."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
  return out


def experiment_config(name: str):
  """``get_config()`` of ``experiments/<name>.py``, loaded by path like ``--config``."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments",
                                                                   f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
