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

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ncjax import collapse, info
from ncjax.sharding import MEMBERS
from ncjax.stats import ClassStats, class_stats


def stack(snapshots) -> object:
  """A list of parameter pytrees -> one pytree of host arrays with a leading (T,) axis;
  an already stacked pytree is returned as is."""
  if isinstance(snapshots, list):
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *snapshots)
  return snapshots


@functools.lru_cache(maxsize=8)
def _batched(fn: Callable):
  """``jit(vmap(fn))``, kept per ``fn``: a second call with the same function (the next
  trajectory, a benchmark repeat) does not trace and compile it again."""
  return jax.jit(jax.vmap(fn))


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
  sharding = NamedSharding(Mesh(np.array(devices), (MEMBERS,)), PartitionSpec(MEMBERS))
  batched = _batched(fn)
  parts = []
  for start in tqdm.trange(0, total, chunk, desc="analyze", disable=not progress or None):
    idx = np.minimum(np.arange(start, start + chunk), total - 1)
    part = jax.device_put(jax.tree.map(lambda x, idx=idx: np.asarray(x)[idx], snapshots), sharding)
    parts.append(jax.device_get(batched(part)))
  out = jax.tree.map(lambda *xs: np.concatenate(xs)[:total], *parts)
  return dict(out)


class Inputs(NamedTuple):
  """What a named metric is applied to, for one snapshot."""

  features: jax.Array  # (n, d)
  labels: jax.Array  # (n,)
  num_classes: int
  head: jax.Array  # (C, d)
  bias: jax.Array | None  # (C,)
  stats: ClassStats  # of (features, labels)


# name -> (what it is, function of Inputs). The table is the whole list: a new metric is
# one line here. "means" are the centred class means (classes present).
_pair = lambda fn: lambda x: fn(x.head, x.stats.centred_means, mask=x.stats.present)
METRICS: dict[str, tuple[str, Callable[[Inputs], object]]] = {
    "nc1": ("NC1 of the features", lambda x: collapse.nc1(x.stats)),
    "cdnv": ("CDNV of the features", lambda x: collapse.cdnv(x.stats)),
    "vci": ("VCI of the features", lambda x: collapse.vci(x.stats)),
    "nc2": ("NC2 terms of means and head", lambda x: collapse.nc2(x.stats, head=x.head)),
    "nc3": ("NC3 of head and means", lambda x: collapse.nc3(x.stats, head=x.head)),
    "nc4": ("NC4 of the features", lambda x: collapse.nc4(
        x.stats, x.features, head=x.head, bias=x.bias)),
    "effective_rank": ("RankMe of the features", lambda x: collapse.effective_rank(x.features)),
    "collapse_metrics": ("every collapse metric", lambda x: collapse.collapse_metrics(
        x.features, x.labels, num_classes=x.num_classes, head=x.head, bias=x.bias)),
    "matrix_entropy": ("H(G(features))", lambda x: info.matrix_entropy(x.features)),
    "mir": ("MIR(head, means)", _pair(info.mir)),
    "hdr": ("HDR(head, means)", _pair(info.hdr)),
    "mutual_information": ("I(head; means)", _pair(info.mutual_information)),
    "sample_mir": ("MIR(features, w_y)", lambda x: info.mir_from_entropies(
        *info.label_entropies(x.features, x.head, x.labels))),
    "sample_hdr": ("HDR(features, w_y)", lambda x: info.hdr_from_entropies(
        *info.label_entropies(x.features, x.head, x.labels)[:2])),
}


def metric_function(metrics: Sequence[str], features_fn: Callable, labels, num_classes: int):
  """``fn(params) -> dict`` evaluating metrics of :data:`METRICS`, chosen by name, on one
  snapshot. Dict-valued metrics contribute ``name/key`` entries.

  Args:
    features_fn: ``params -> (features (n, d), head (C, d), bias (C,) or None)``.
    labels: (n,) int labels of the samples ``features_fn`` embeds.
  """
  unknown = [m for m in metrics if m not in METRICS]
  if unknown:
    raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}.")

  def fn(params):
    features, head, bias = features_fn(params)
    stats = class_stats(features, labels, num_classes=num_classes)
    inputs = Inputs(features, labels, num_classes, head, bias, stats)
    out = {}
    for name in metrics:
      value = METRICS[name][1](inputs)
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
  """Metric trajectories over parameter snapshots (see :data:`METRICS` for the names and
  what each is applied to, :func:`evaluate` for chunking and devices).

  Returns:
    ``{metric: (T,) np.ndarray}``.
  """
  labels = jnp.asarray(labels)
  return evaluate(metric_function(metrics, features_fn, labels, num_classes), snapshots,
                  chunk_size)
