"""Metrics over a trajectory of parameter snapshots: one jitted vmap, applied chunk by chunk.

The Python API for custom loops::

    snapshots = [params_at_step_0, params_at_step_100, ...]      # or one stacked pytree
    def features_fn(params):                                       # -> (features, head, bias)
      logits, features = model.apply({"params": params}, inputs)
      return features, params["head"]["kernel"].T, params["head"]["bias"]
    curves = ncjax.analysis.trajectory_metrics(
        snapshots, features_fn, labels, num_classes, metrics=("nc1", "vci", "mir"))
    curves["nc1"]                                                  # (T,) NumPy array
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import ncjax
from ncjax import collapse


def stack(snapshots) -> object:
  """A list of parameter pytrees -> one pytree of host arrays with a leading (T,) axis;
  an already stacked pytree is returned as is."""
  if isinstance(snapshots, list):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *snapshots)
  return snapshots


def evaluate(fn: Callable, snapshots, chunk_size: int = 16, progress: bool = True) -> dict:
  """``fn(params) -> dict of arrays`` for every snapshot, as ``{key: (T, ...) np.ndarray}``.

  ``jax.jit(jax.vmap(fn))`` runs on chunks of ``chunk_size`` snapshots (the last chunk
  padded by repeating its final snapshot, so it compiles once); only one chunk is on
  device at a time. With several devices each chunk is split across them (``chunk_size``
  is rounded up to a multiple of the device count).

  Args:
    fn: a jittable function of one parameter pytree returning a dict.
    snapshots: a list of parameter pytrees, or one pytree with a leading (T,) axis.
  """
  snapshots = stack(snapshots)
  total = len(jax.tree.leaves(snapshots)[0])
  devices = jax.devices()
  chunk = -(-chunk_size // len(devices)) * len(devices)
  sharding = NamedSharding(Mesh(np.array(devices), ("snapshots",)), PartitionSpec("snapshots"))
  batched = jax.jit(jax.vmap(fn))
  parts = []
  for start in tqdm.trange(0, total, chunk, desc="analyze", disable=not progress or None):
    idx = np.minimum(np.arange(start, start + chunk), total - 1)
    part = jax.device_put(jax.tree.map(lambda x: np.asarray(x)[idx], snapshots), sharding)
    parts.append(jax.device_get(batched(part)))
  out = jax.tree.map(lambda *xs: np.concatenate(xs)[:total], *parts)
  return dict(out)


def _inputs(features, labels, num_classes, head, bias) -> dict:
  """What a metric's parameters bind to, by name (see :func:`metric_function`)."""
  stats = collapse.class_stats(features, labels, num_classes)
  pair = {"z1": head, "z2": stats.centred_means, "mask": stats.present}
  return {"x": features, "features": features, "z": features, "labels": labels,
          "num_classes": num_classes, "head": head, "bias": bias, "stats": stats, **pair}


def _resolve(name: str) -> tuple[Callable, list[str]]:
  fn = getattr(ncjax, name, None)
  if name.startswith("_") or not inspect.isfunction(fn):
    raise ValueError(f"unknown metric {name!r}: not a function of the ncjax API.")
  signature = inspect.signature(fn).parameters
  bound = [p for p in signature if p in _BINDABLE and (p != "mask" or "z1" in signature)]
  missing = [p for p, v in signature.items() if p not in bound and v.default is v.empty]
  if missing:
    raise ValueError(f"metric {name!r} needs {missing}, which an analysis cannot supply; "
                     f"it binds {sorted(_BINDABLE)}.")
  return fn, bound


_BINDABLE = frozenset(["x", "features", "z", "labels", "num_classes", "head", "bias",
                       "stats", "z1", "z2", "mask"])


def metric_function(metrics: Sequence[str], features_fn: Callable, labels, num_classes: int):
  """``fn(params) -> dict`` evaluating ncjax metrics, chosen by name, on one snapshot.

  A metric's arguments are bound by parameter name: ``features``/``x``/``z`` to the (n, d)
  features, ``labels``, ``num_classes``, ``head`` (C, d) and ``bias`` (C,), ``stats`` to
  their ClassStats, and the pair ``z1, z2`` to the head rows and the centred class means
  (the first paper's pair, masked to the classes present). So any metric added to the
  API later works here unchanged. Dict-valued metrics contribute ``name/key`` entries.

  Args:
    features_fn: ``params -> (features (n, d), head (C, d), bias (C,) or None)``.
    labels: (n,) int labels of the samples ``features_fn`` embeds.
  """
  resolved = {name: _resolve(name) for name in metrics}

  def fn(params):
    features, head, bias = features_fn(params)
    inputs = _inputs(features, labels, num_classes, head, bias)
    out = {}
    for name, (metric, bound) in resolved.items():
      value = metric(**{p: inputs[p] for p in bound})
      if isinstance(value, dict):
        out |= {f"{name}/{k}": v for k, v in value.items()}
      else:
        out[name] = value
    return out

  return fn


def trajectory_metrics(
    snapshots,
    features_fn: Callable,
    labels,
    num_classes: int,
    metrics: Sequence[str] = ("collapse_metrics",),
    chunk_size: int = 16,
) -> dict[str, np.ndarray]:
  """Metric trajectories over parameter snapshots (see :func:`metric_function` for how
  ``metrics`` are chosen and bound, :func:`evaluate` for chunking and devices).

  Returns:
    ``{metric: (T,) np.ndarray}``.
  """
  labels = jnp.asarray(labels)
  return evaluate(metric_function(metrics, features_fn, labels, num_classes), snapshots,
                  chunk_size)
