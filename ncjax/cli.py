"""``ncjax train --config FILE --workdir DIR [--config.KEY=VALUE ...] [--overwrite]``,
``ncjax study --config FILE --workdir DIR [--config.KEY=VALUE ...]`` and
``ncjax analyze [--workdir] DIR [--metrics NAME,...] [--split train|test] [--chunk_size K]``;
``ncjax [SUB] --help`` (or ``-h``) explains them, and for train/study the config's keys.

The process-wide settings live here, not in the library: the XLA:CPU scheduler flag
(before JAX starts) and matplotlib's Agg backend. Every misuse ends in one line on
stderr and exit status 2, before the run directory is touched.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

FLAG = "xla_cpu_enable_concurrency_optimized_scheduler"

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (resumed if it exists).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False,
                               "train: delete the run in --workdir and start afresh.")
_ALLOW = flags.DEFINE_list("allow_change", [], "train: config keys that may differ from "
                           "the run being resumed (e.g. lr after a NaN stop).")
_METRICS = flags.DEFINE_list(
    "metrics", None, "analyze: metrics to evaluate (e.g. nc1,vci,mir,matrix_entropy; see "
    "ncjax.analysis.trajectory.METRICS); default: exactly the metrics training logs.")
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "test"],
                           "analyze: whose features the named --metrics see.")
_CHUNK = flags.DEFINE_integer("chunk_size", 16, "analyze: snapshots restored and "
                              "evaluated at a time.", lower_bound=1)
# Several processes (jax.distributed.initialize's own argument names): the same command on
# every host, each with its --process_id; or --distributed where JAX detects the cluster.
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Several processes: HOST:PORT of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Several processes: how many.",
                                      lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Several processes: this one's index.",
                                   lower_bound=0)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Initialise the processes from the cluster environment JAX "
    "detects (SLURM, Open MPI, Cloud TPU, Kubernetes, JAX_COORDINATOR_ADDRESS).")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout", 100, "Several processes: seconds after which a process that "
    "stopped answering ends every other one (non-zero exit; rerun to resume).", lower_bound=1)

USAGE = ("usage: ncjax train --config FILE --workdir DIR [--config.KEY=VALUE ...] "
         "[--overwrite] [--allow_change=KEY,...]\n"
         "       ncjax study --config FILE --workdir DIR [--config.KEY=VALUE ...]\n"
         "       ncjax analyze [--workdir] DIR [--metrics NAME,...] [--split train|test] "
         "[--chunk_size K]\n"
         "       ncjax [train|study|analyze] --help\n"
         "  several processes, on each: [--coordinator_address=HOST:PORT --num_processes=N "
         "--process_id=I | --distributed] [--heartbeat_timeout=SECONDS]")


SUBCOMMANDS = {
    "train": ("Train one run (a task, a model, seeds) in --workdir; resumes it if it exists.",
              ("config", "workdir", "overwrite", "allow_change")),
    "study": ("Run a study config's runs (each a train run) under --workdir and summarise.",
              ("config", "workdir")),
    "analyze": ("Evaluate metrics on every checkpoint of a run: analysis.<split>.jsonl/.png.",
                ("workdir", "metrics", "split", "chunk_size")),
}
DISTRIBUTED = ("coordinator_address", "num_processes", "process_id", "distributed",
               "heartbeat_timeout")
_ASSIGNMENT = re.compile(r"^\s*\w+((?:\.\w+)+)\s*=[^#]*#\s*(.+)$")


def _flag_lines(names) -> list[str]:
  lines = []
  for name in names:
    flag = flags.FLAGS[name]
    default = "" if flag.default in (None, [], False) else f" (default: {flag.default})"
    lines.append(f"  --{name}{default}\n      {flag.help}")
  return lines


def _comments(path: str) -> dict[str, str]:
  """{"model.init_scale": comment} of the ``c.KEY = value  # comment`` lines of ``path``."""
  with open(path) as f:
    return {m[1][1:]: m[2] for m in map(_ASSIGNMENT.match, f) if m}


def _load_config(spec: str):
  """``get_config()`` of a --config FILE (``FILE:ARG``: ``get_config(ARG)``)."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("ncjax_help_config", path)
  if module_spec is None or module_spec.loader is None:
    raise FileNotFoundError(f"cannot load a config from {path}")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _config_lines(spec: str | None) -> list[str]:
  """The config's keys with defaults and comments (the base config without ``spec``)."""
  from ncjax.train import config as base
  from ncjax.train.rundir import flat

  comments = _comments(base.__file__)
  if spec is None:
    title, config = "config keys (defaults of every config; --config FILE sets its own):", \
        base.base_config()
  else:
    title, config = f"config keys of {spec} (override with --config.KEY=VALUE):", \
        _load_config(spec)
    comments |= _comments(spec.partition(":")[0])
  lines = [title]
  for key, value in flat(config.to_dict()).items():
    comment = f"  # {comments[key]}" if key in comments else ""
    lines.append(f"  {key} = {value!r}{comment}")
  return lines


def _help(argv: list[str]) -> None:
  """Prints the help of ``ncjax`` or of its subcommand in ``argv``; exits 0."""
  sub = next((a for a in argv[1:] if a in SUBCOMMANDS), None)
  if sub is None:
    lines = ["ncjax: neural-collapse and matrix-information metrics of training runs.", "",
             USAGE, "", "subcommands (ncjax SUB --help for their flags and config keys):"]
    lines += [f"  {name:8} {text}" for name, (text, _) in SUBCOMMANDS.items()]
    lines += ["", "flags:", *_flag_lines(sorted({f for _, fs in SUBCOMMANDS.values()
                                                  for f in fs}))]
  else:
    text, names = SUBCOMMANDS[sub]
    lines = [f"ncjax {sub}: {text}", "", "flags:", *_flag_lines(names)]
    if sub != "analyze":
      spec = next((v for f, v in zip(argv, [*argv[1:], None], strict=True) if f == "--config"),
                  next((a.removeprefix("--config=") for a in argv
                        if a.startswith("--config=")), None))
      try:
        lines += ["", *_config_lines(spec)]
      except Exception as e:  # noqa: BLE001 - config files raise anything
        _fail(f"cannot load --config: {_one_line(e, last=True)}")
  lines += ["", "several processes (on each):", *_flag_lines(DISTRIBUTED)]
  print("\n".join(lines))
  sys.exit(0)


def _fail(message: str, status: int = 2) -> NoReturn:
  print(f"ncjax: {message}", file=sys.stderr)
  sys.exit(status)


def _config_and_workdir():
  """(--config, --workdir), both given, or the usage and exit status 2."""
  if _CONFIG.value is None or _WORKDIR.value is None:
    _fail(USAGE)
  return _CONFIG.value, _WORKDIR.value


CACHE_BYTES = 4 * 2**30  # the persistent compilation cache's bound (least recently used out)


def _process_settings() -> None:
  """XLA:CPU: a jitted vmap of the metrics intermittently never returns with the
  concurrency-optimized scheduler (jaxlib 0.10.2); GPU/TPU ignore the flag. JAX's
  persistent compilation cache (unless JAX_COMPILATION_CACHE_DIR is set). Plots: Agg."""
  xla = os.environ.get("XLA_FLAGS", "")
  if FLAG not in xla:
    os.environ["XLA_FLAGS"] = f"{xla} --{FLAG}=false".strip()
  # Compiled programs are kept across processes (runs of a study, resumed runs, analyze):
  # most of a short run's time is XLA compiling the same train step and metrics pass.
  # A size bound makes JAX take a file lock around every cache read and write: without
  # it, a process can read an entry another is still writing (several processes of one
  # run, two runs at once) and crash deserialising it.
  import jax
  if not jax.config.values["jax_compilation_cache_dir"]:
    jax.config.update("jax_compilation_cache_dir",
                      os.path.join(os.path.expanduser("~"), ".cache", "ncjax", "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  if jax.config.values["jax_compilation_cache_max_size"] == -1:
    jax.config.update("jax_compilation_cache_max_size", CACHE_BYTES)
  import matplotlib
  matplotlib.use("Agg")


def _initialize_processes() -> None:
  """``jax.distributed.initialize`` from the flags, before anything touches a backend."""
  given = [f.value is not None for f in (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID)]
  if not (_DISTRIBUTED.value or any(given)):
    return
  if any(given) and not all(given):
    _fail("several processes need all of --coordinator_address, --num_processes and "
          "--process_id (or --distributed alone).")
  import jax

  try:
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                               heartbeat_timeout_seconds=_HEARTBEAT.value,
                               shutdown_timeout_seconds=_HEARTBEAT.value,
                               initialization_timeout=max(_HEARTBEAT.value, 60))
  except Exception as e:  # noqa: BLE001 - a bad address, a timeout, a missing cluster
    _fail(f"jax.distributed.initialize failed: {_one_line(e)}")


def _train() -> None:
  config, workdir = _config_and_workdir()
  import jax
  import numpy as np

  from ncjax import plots  # after flag parsing: fast errors
  from ncjax.tasks import make_task
  from ncjax.train import NonFiniteLoss, rundir, train
  from ncjax.train.meshes import is_writer

  if "runs" in config:
    _fail("this config describes a study of several runs: use `ncjax study`.")
  try:
    task = make_task(config)  # validates first; e.g. FileNotFoundError: TFDS not prepared
  except (ValueError, FileNotFoundError, ImportError) as e:
    _fail(str(e))
  try:
    records = train(task, workdir, overwrite=_OVERWRITE.value,
                    allow_changes=tuple(_ALLOW.value))
  except (rundir.RunDirError, FileNotFoundError, ValueError) as e:  # e.g. a bad init_from
    _fail(str(e))
  except NonFiniteLoss as e:
    _fail(str(e), 1)
  except KeyboardInterrupt as e:
    _fail(f"{e or 'interrupted'}", 130)
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    _fail(f"process {jax.process_index()}: a collective failed, another process is probably "
          f"lost ({_one_line(e, last=True)[:200]}); rerun the same command on every process to "
          "resume from the last checkpoint.", 1)
  if not is_writer():
    return
  figures = plots.run_figures(records, config, workdir)
  last = records[-1]
  acc = {k: float(np.median(last[f"{k}/accuracy"])) for k in ("train", "test")}  # of seeds
  print(f"step {last['step']}: train acc {acc['train']:.3f}, test acc {acc['test']:.3f}; "
        f"wrote {workdir}/metrics.jsonl, {', '.join(figures)}, checkpoints/")


def _study() -> None:
  config, workdir = _config_and_workdir()
  from ncjax import studies
  from ncjax.train import NonFiniteLoss, rundir

  try:
    studies.validate_study(config)  # every run's config, before anything runs
    studies.run_study(config, workdir)
  except (rundir.RunDirError, FileNotFoundError, ValueError, ImportError) as e:
    _fail(str(e))
  except NonFiniteLoss as e:
    _fail(str(e), 1)
  except KeyboardInterrupt as e:
    _fail(f"{e or 'interrupted'}", 130)
  print(f"wrote {workdir}/summary.json")


def _analyze(argv: list[str]) -> None:
  given = [*argv[2:], *([_WORKDIR.value] if _WORKDIR.value else [])]
  if len(set(given)) != 1:
    _fail(USAGE)
  workdir = given[0]
  from ncjax.analysis.analyze import analyze

  try:
    records = analyze(workdir, _METRICS.value, _SPLIT.value, _CHUNK.value)
  except (FileNotFoundError, ValueError) as e:
    _fail(f"analyze: {e}")
  stem = "analysis" if _METRICS.value is None else f"analysis.{_SPLIT.value}"
  print(f"{len(records)} snapshots (steps {records[0]['step']}..{records[-1]['step']}); "
        f"wrote {workdir}/{stem}.jsonl, {stem}.png")


def _main(argv: list[str]) -> None:
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  _initialize_processes()
  if argv[1:2] == ["train"] and len(argv) == 2:
    _train()
  elif argv[1:2] == ["study"] and len(argv) == 2:
    _study()
  elif argv[1:2] == ["analyze"] and len(argv) <= 3:
    _analyze(argv)
  else:
    _fail(USAGE)


def _one_line(e: Exception, last: bool = False) -> str:
  """The message of ``e`` on one line (its last line only if ``last``)."""
  text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
  text = text.replace("\\n", "\n").replace("\\'", "'")  # a KeyError's repr, nested
  lines = [part.strip() for part in text.splitlines() if part.strip(" '")]
  lines = [line[1:-1] if line[:1] == line[-1:] == "'" else line for line in lines]
  return lines[-1] if last else " ".join(lines)


def _config_importable(argv: list[str]) -> None:
  """Puts the --config file's directory first on sys.path, as Python does for a script,
  so config files import their shared recipes (experiments/common.py as ``common``)."""
  for flag, value in zip(argv, argv[1:] + [""], strict=True):
    path = flag.removeprefix("--config=") if flag.startswith("--config=") else (
        value if flag == "--config" else None)
    if path:
      sys.path.insert(0, os.path.dirname(os.path.abspath(path.partition(":")[0])))


def _parse(argv: list[str]) -> list[str]:
  """absl flag parsing with every error (an unknown key, a bad value) in one line."""
  _config_importable(argv)
  try:
    argv = flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - config files raise anything
    _fail(f"bad flag: {_one_line(e)}")
  if _CONFIG.present:
    try:  # ml_collections defers a config file's load error to the first access
      _CONFIG.value.keys()
    except Exception as e:  # noqa: BLE001
      _fail(f"cannot load --config: {_one_line(e, last=True)}")
  return argv


def main() -> None:
  if {"-h", "--help", "--helpshort", "--helpfull"} & set(sys.argv[1:]):
    _config_importable(sys.argv)
    _help(sys.argv)
  _process_settings()
  app.run(_main, flags_parser=_parse)
