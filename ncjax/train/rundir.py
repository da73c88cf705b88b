"""The run directory: what it holds, and the rules that keep it intact.

``DIR/config.json`` (the run's config), ``DIR/schedule.json`` (the trajectory snapshot
steps, fixed when the run starts and only ever extended), ``DIR/metrics.jsonl`` (one
record per logged step), ``DIR/checkpoints/`` (Orbax). Files are replaced atomically.
A directory is resumed only with the same config (``steps`` may grow); anything else is
refused before the directory is touched, unless ``overwrite`` starts afresh. With several
processes, process 0 alone writes here (the others read).
"""

from __future__ import annotations

import json
import os
import shutil

import ml_collections

from ncjax.train import checkpoints, meshes
from ncjax.train.config import RESUMABLE_CHANGES, base_config

OUTPUTS = ("config.json", "schedule.json", "metrics.jsonl", "curves.png", "checkpoints",
           "corrupt", "analysis.jsonl", "analysis.png", "analysis.train.jsonl",
           "analysis.train.png", "analysis.test.jsonl", "analysis.test.png", "losses.jsonl",
           "tensorboard")


class RunDirError(ValueError):
  """The run directory cannot be used with this config (nothing was changed)."""


def write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to a temporary file beside ``path``, then renames it over ``path``."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def flat(tree: dict, prefix: str = "") -> dict:
  """{"a.b": value} of a nested dict."""
  out: dict = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out |= flat(value, f"{prefix}{key}.")
    else:
      out[f"{prefix}{key}"] = value
  return out


def _as_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def write_jsonl(path: str, records: list[dict]) -> None:
  """Writes ``records`` as JSON lines, atomically (:func:`write_atomic`)."""
  write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run directory was trained with."""
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except FileNotFoundError as e:
    raise FileNotFoundError(f"{workdir} is not an ncjax run directory (no config.json).") from e
  except json.JSONDecodeError as e:
    raise RunDirError(f"{path} is not valid JSON ({e}).") from e


def prepare(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
            allow_changes: tuple[str, ...] = (), like=None) -> list[int]:
  """Makes ``workdir`` ready for ``config``; returns the trajectory snapshot steps.

  A new directory gets config.json and schedule.json. An existing run is resumed only if
  its config equals ``config`` up to RESUMABLE_CHANGES and ``allow_changes`` (e.g. a
  smaller ``lr`` after a NaN stop; ``steps`` may grow, and the snapshot schedule is
  extended, never shrunk); otherwise RunDirError names the differing keys. A key the
  stored config lacks (added to ncjax since) counts as its default. ``like``: the new
  state (or its shapes); checkpoints of another model raise
  :class:`ncjax.train.checkpoints.ModelMismatch`. ``overwrite`` deletes the run's
  outputs first.
  """
  config_path = os.path.join(workdir, "config.json")
  if not overwrite:  # every process reads the same files and reaches the same verdict
    _check_resumable(config, workdir, allow_changes)
    if like is not None:
      checkpoints.check_model(workdir, like)
  meshes.barrier("ncjax.rundir.checked")  # nobody writes before every process has read
  schedule_path = os.path.join(workdir, "schedule.json")
  if meshes.is_writer():
    if overwrite:
      for name in OUTPUTS:
        path = os.path.join(workdir, name)
        if os.path.isdir(path):
          shutil.rmtree(path)
        elif os.path.exists(path):
          os.remove(path)
    try:
      os.makedirs(workdir, exist_ok=True)
      schedule = set(checkpoints.snapshot_steps(config.steps, config.snapshots))
      if os.path.exists(schedule_path):
        with open(schedule_path) as f:
          schedule |= set(json.load(f))
      write_atomic(schedule_path, json.dumps(sorted(schedule)))
      write_atomic(config_path, config.to_json_best_effort(indent=2))
    except OSError as e:
      raise RunDirError(f"cannot write to {workdir}: {e.strerror}.") from e
  meshes.barrier("ncjax.rundir.prepared")
  with open(schedule_path) as f:
    return json.load(f)


def _check_resumable(config: ml_collections.ConfigDict, workdir: str,
                     allow_changes: tuple[str, ...]) -> None:
  """Raises RunDirError unless ``workdir`` is new or holds a run ``config`` may resume."""
  config_path = os.path.join(workdir, "config.json")
  new = _as_json(config)
  if os.path.exists(config_path):
    old = _as_json(load_config(workdir))
    flat_old, flat_new = flat(old), flat(new)
    # A key added to ncjax after the run started, at its default, changes nothing.
    defaults = flat(_as_json(base_config()))
    flat_old |= {k: defaults[k] for k in flat_new.keys() - flat_old.keys() if k in defaults}
    differ = sorted(k for k in flat_old.keys() | flat_new.keys()
                    if flat_old.get(k) != flat_new.get(k)
                    and k not in RESUMABLE_CHANGES | set(allow_changes))
    if differ:
      shown = ", ".join(f"{k} ({flat_old.get(k)!r} -> {flat_new.get(k)!r})" for k in differ[:4])
      raise RunDirError(f"{workdir} holds a run with a different config: {shown}"
                        f"{' ...' if len(differ) > 4 else ''}; use another --workdir, "
                        "--overwrite to start afresh, or --allow_change=KEY to resume with it.")
    saved = checkpoints.saved_steps(workdir)
    if saved and max(saved) > config.steps:
      raise RunDirError(f"{workdir} has a checkpoint at step {max(saved)}, beyond "
                        f"config.steps = {config.steps}.")
  elif os.path.isdir(checkpoints.directory(workdir)):
    raise RunDirError(f"{workdir} has checkpoints but no config.json; use another --workdir, "
                      "or --overwrite to start afresh.")


def read_log(path: str) -> list[dict]:
  """Records of a metrics.jsonl; a torn or invalid line (a crash mid-write) is skipped."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(record, dict) and "step" in record:
        records.append(record)
  return records
