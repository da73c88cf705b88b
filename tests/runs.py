"""Helpers for tests that run training: the CLI command, a run's log, its final state,
a byte-for-byte picture of a run directory, and tiny study configs."""

import hashlib
import json
import os
import sys

import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")
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
  """``get_config()`` of ``experiments/<name>.py`` (``name:arg``: ``get_config(arg)``),
  loaded by path like ``--config``."""
  import importlib.util

  if EXPERIMENTS not in sys.path:  # as ncjax.cli does for the --config file's directory
    sys.path.insert(0, EXPERIMENTS)
  name, _, arg = name.partition(":")
  spec = importlib.util.spec_from_file_location(name, os.path.join(EXPERIMENTS, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def recipe(name: str, **overrides):
  """A recipe of experiments/common.py (e.g. ``recipe("digits_cnn_config", steps=5)``)."""
  from experiments import common

  return getattr(common, name)(**overrides)


def study_run(classes=(0, 1), **overrides):
  """A tiny classification run on synthetic data (dotted keys override)."""
  from experiments.common import overridden
  from ncjax.train.config import base_config

  c = base_config()
  c.task = "classification"
  c.data.name = "synthetic"
  c.data.classes = classes
  c.data.eval_batch_size = 128
  c.model.name = "cnn"
  c.model.kwargs = {"channels": (4,), "features": 8}
  c.optim.name = "sgd"
  c.update(dict(batch_size=32, lr=0.05, steps=20, metrics_every=20, checkpoint_every=20,
                snapshots=1, sample_size=64))
  return overridden(c, overrides)


def study_probe(source):
  """A linear probe on other classes, started from the study's run ``source``."""
  return study_run((2, 3), **{"init_from": f"@{source}", "freeze": "backbone",
                         "data.train_per_class": 8, "batch_size": 16})


def study(summary: str, **runs):
  """A study of ``runs`` with the summary ``summary`` (its other keys set by the test)."""
  import ml_collections

  return ml_collections.ConfigDict({"name": "tiny", "summary": summary, "runs": runs})


def transfer_study(**runs):
  """A tiny transfer study on synthetic data: source classes (0, 1) of every run, base
  ``base``, probes on classes (2, 3) with all train images and 4-shot x 2 draws."""
  c = study("transfer", **runs)
  c.base = "base"
  c.targets = {"other": {"name": "synthetic", "classes": (2, 3)}}
  c.regimes = {"full": {"target": "other", "shots": 0},
               "few_shot": {"target": "other", "shots": 4, "draws": 2}}
  c.probe = {"cs": (0.1, 1.0), "folds": 2, "max_iter": 200}
  return c


def free_port() -> int:
  """A TCP port on 127.0.0.1 nobody listens on now (for a coordinator)."""
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def device_env(devices: int) -> dict:
  """os.environ with XLA faking ``devices`` CPU devices (replacing the tests' 8)."""
  import re

  env = dict(os.environ)
  flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
  return env


def launch_processes(argv, processes=2, devices=2, port=None, **popen):
  """``processes`` local processes of ``argv + [--coordinator_address ... --process_id I]``
  with ``devices`` fake CPU devices each: the Popen objects."""
  import subprocess

  port = port or free_port()
  return [subprocess.Popen([*argv, f"--coordinator_address=127.0.0.1:{port}",
                            f"--num_processes={processes}", f"--process_id={i}"],
                           env=device_env(devices), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, **popen)
          for i in range(processes)]


def wait_all(procs, timeout: float) -> list[tuple[int, str]]:
  """(return code, stderr) of each process, waiting at most ``timeout`` s in all (the
  rest are killed)."""
  import subprocess
  import time

  deadline, out = time.monotonic() + timeout, []
  for p in procs:
    try:
      _, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    out.append((p.returncode, err))
  return out
