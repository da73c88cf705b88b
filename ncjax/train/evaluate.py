"""Metrics over whole splits, streamed batch by batch on device, under one key scheme.

Keys (named in :mod:`ncjax.keys`, used by every task, the logs, the plots and ``ncjax analyze``):

- ``train/loss, train/accuracy, test/loss, test/accuracy``;
- ``collapse/<name>`` for the train split, ``test_collapse/<name>`` for the test split,
  ``<name>`` a key of :func:`ncjax.collapse_metrics` (nc1, vci, cdnv, mir, hdr, ...);
- ``sample/mir, sample/hdr, sample/entropy_features, sample/entropy_head``: features z_i
  against their head rows w_{y_i} on a fixed subset of train samples;
- ``weights/norm``: the global L2 norm of the parameters (a progress measure);
- chance levels (:mod:`ncjax.baselines`) beside the metrics, ``<key>_null`` (mean over
  draws) and ``<key>_null_std``: under both collapse prefixes the head-vs-means metrics
  of independent Gaussian head rows and means (``keys.GAUSSIAN_METRICS``: mir, hdr,
  entropies, mi, nc3, unc3) and the collapse metrics of the split's features with its
  labels permuted within each batch (``keys.PERMUTATION_METRICS``: nc1, vci, cdnv, NC2
  of the means, gnc2; :data:`NULL_DRAWS` permutations), and ``sample/<name>_null`` of
  Gaussian z_i and w_{y_i} with the sample's class counts; ``<key>_etf`` the value at a
  simplex ETF (``keys.ETF_METRICS``, C >= 3);
- with layer metrics, ``layer<i>/<name>`` for the train split's features after block i
  (1, 2, ...; pooled, see ``ncjax.models.vision``), ``<name>`` in ``keys.LAYER_METRICS``;
- a task may add its own (the grokking task's ``fourier/*``).

A pass accumulates, per split, :class:`SplitSums` (ClassStats plus loss and accuracy
sums); a second pass counts the NC4 disagreements against the TRAIN split's class means
(Papyan et al.: the network's decision against the nearest training class centre; for
the test split too). Both are jitted per batch and vmapped over the leading axis of the
states (seeds, or snapshots x seeds).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from ncjax import baselines, collapse, info, keys, losses, progress, spectral
from ncjax.data import Batch
from ncjax.models import head_weights
from ncjax.models.vision import LAYERS
from ncjax.stats import ClassStats
from ncjax.train import meshes
from ncjax.train.state import TrainState, variables

NULL_DRAWS = 8  # label permutations per split (class sums beside the real ClassStats)


def _forward(state: TrainState, inputs: jax.Array):
  return state.apply_fn(variables(state), inputs, train=False)


def _forward_layers(state: TrainState, inputs: jax.Array):
  """(logits, features, every block's pooled output) (see ``ncjax.models.vision``)."""
  (logits, features), exposed = state.apply_fn(variables(state), inputs, train=False,
                                               mutable=["intermediates"])
  return logits, features, exposed["intermediates"][LAYERS]


@flax.struct.dataclass
class SplitSums:
  """A split's running sums, per state: ClassStats of the features (and of each
  layer's pooled output, an empty tuple when layers are not measured), the summed loss,
  the count of correct predictions, and the class sums of the features under NULL_DRAWS
  label permutations (:class:`ncjax.baselines.PermutedSums`). ``empty`` / ``update`` /
  ``compute``."""

  stats: ClassStats
  loss: jax.Array
  correct: jax.Array
  null: baselines.PermutedSums
  layers: tuple[ClassStats, ...] = ()

  @classmethod
  def empty(cls, num_classes: int, dim: int, layer_dims: tuple[int, ...] = ()) -> SplitSums:
    empty = lambda d: ClassStats.empty(num_classes=num_classes, dim=d)
    null = baselines.PermutedSums.empty(NULL_DRAWS, num_classes, dim)
    return cls(empty(dim), jnp.float32(0), jnp.float32(0), null, tuple(map(empty, layer_dims)))

  def update(self, batch: Batch, logits, features, layers=()) -> SplitSums:
    """Adds one batch's forward pass: logits (n, C), features (n, d), layers (n, d_i).
    Draw r permutes the labels within the batch by key r (the same every batch)."""
    n = jnp.sum(batch.mask)
    stats = self.stats.update(features, batch.labels, batch.mask)
    keys = jax.random.split(jax.random.key(0), NULL_DRAWS)
    permuted = jax.vmap(baselines.permuted_labels, in_axes=(0, None, None))(
        keys, batch.labels, batch.mask)  # (R, n)
    return SplitSums(
        stats=stats,
        loss=self.loss + losses.cross_entropy(logits, batch.labels, mask=batch.mask) * n,
        correct=self.correct + jnp.sum((jnp.argmax(logits, -1) == batch.labels) & batch.mask),
        null=self.null.update(stats, features, permuted, batch.mask),
        layers=tuple(s.update(x, batch.labels, batch.mask)
                     for s, x in zip(self.layers, layers, strict=True)))

  def compute(self, head: jax.Array, disagreements: jax.Array) -> dict:
    """The split's metrics (unprefixed collapse keys, ``layer<i>/*``, ``loss``,
    ``accuracy``) given the head (C, d) and the NC4 disagreement count."""
    sigma_t = spectral.psd_eigh_core(self.stats.scaled_sigma_t)  # label-free: nulls share it
    out = collapse.collapse_metrics_from_stats(self.stats, head=head, sigma_t=sigma_t)
    out["nc4"] = disagreements / self.stats.total
    out |= baselines.summarize(baselines.permuted_metrics(self.stats, self.null, sigma_t))
    for i, s in enumerate(self.layers):
      layer = collapse.collapse_metrics_from_stats(s)
      out |= keys.keyed(keys.layer(i + 1), {k: layer[k] for k in keys.LAYER_METRICS})
    return out | {keys.LOSS: self.loss / self.stats.total,
                  keys.ACCURACY: self.correct / self.stats.total}


def _accumulate(state: TrainState, batch: Batch, sums: SplitSums) -> SplitSums:
  if sums.layers:
    return sums.update(batch, *_forward_layers(state, batch.inputs))
  return sums.update(batch, *_forward(state, batch.inputs))


def _nc4_count(state: TrainState, batch: Batch, stats: ClassStats) -> jax.Array:
  """NC4 disagreements in a batch against the class means of ``stats`` (the train
  split's), the network's predictions from its own logits."""
  logits, features = _forward(state, batch.inputs)
  return collapse.nc4(stats, features, logits=logits, mask=batch.mask) * jnp.sum(batch.mask)


def sample_metrics(state: TrainState, batch: Batch) -> dict:
  """Sample-level information metrics of features z_i and head rows w_{y_i}."""
  _, z = _forward(state, batch.inputs)
  w, _ = head_weights(state.params)
  alive = batch.mask & jnp.any(z != 0, axis=1)  # all-zero ReLU features have no direction
  h_z, h_w, h_joint = info.label_entropies(z, w, batch.labels, mask=alive)
  values = (info.mir_from_entropies(h_z, h_w, h_joint), info.hdr_from_entropies(h_z, h_w),
            h_z, h_w)
  return keys.keyed(keys.SAMPLE, dict(zip(keys.SAMPLE_METRICS, values, strict=True)))


def make_evaluator(num_classes: int, mesh: Mesh, data_axis: int | None, layers: bool = False):
  """``evaluate(states, splits, sample) -> dict of (S,) arrays`` for states with a leading
  axis S, on ``mesh`` (:mod:`ncjax.train.meshes`). ``splits``: ``{"train": batches, "test":
  batches}`` where ``batches()`` returns a fresh iterable of :class:`Batch` (global arrays,
  rows over the mesh's ``data`` axis); ``sample``: the Batch for :func:`sample_metrics`.
  ``data_axis``: 0 when every state has its own data (a leading S axis on each batch),
  None when the data are shared. ``layers``: also the ``layer<i>/*`` metrics of the
  train split (a model in ``ncjax.models.LAYERED``). The metrics come back replicated:
  every process can read them.
  """
  axes = (0, data_axis)
  members, everywhere = meshes.members_sharding(mesh), meshes.replicated(mesh)
  accumulate = meshes.serialized(jax.jit(jax.vmap(_accumulate, in_axes=(*axes, 0)),
                                          out_shardings=members), mesh)
  count_nc4 = meshes.serialized(jax.jit(jax.vmap(lambda state, batch, stats, total: total + (
      _nc4_count(state, batch, stats)), in_axes=(*axes, 0, 0)), out_shardings=members), mesh)
  samples = meshes.serialized(jax.jit(jax.vmap(sample_metrics, in_axes=axes),
                                       out_shardings=everywhere), mesh)
  norms = meshes.serialized(jax.jit(jax.vmap(progress.weight_norm), out_shardings=everywhere),
                            mesh)

  @functools.partial(meshes.serialized, mesh=mesh)
  @functools.partial(jax.jit, out_shardings=everywhere)
  @jax.vmap
  def summarise(state, sums: SplitSums, disagreements):
    return sums.compute(head_weights(state.params)[0], disagreements)

  @functools.partial(meshes.serialized, mesh=mesh)
  @functools.partial(jax.jit, static_argnums=2, out_shardings=members)
  def start(states, batch, with_layers: bool):
    """Empty sums (and a zero NC4 count) per state, shaped by the model's features."""
    size = jax.tree.leaves(states.params)[0].shape[0]
    forward = _forward_layers if with_layers else _forward
    shapes = jax.eval_shape(jax.vmap(forward, in_axes=axes), states, batch.inputs)
    sums = SplitSums.empty(num_classes, shapes[1].shape[-1],
                           tuple(x.shape[-1] for x in shapes[2]) if with_layers else ())
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (size, *x.shape)), (sums, jnp.float32(0)))

  def host_nulls(sample: Batch, dim: int, size: int) -> dict:
    """The shape-only chance levels (cached per shape) and ETF values, (size,) each."""
    labels, mask = meshes.fetch((sample.labels, sample.mask))
    counts = lambda y, m: tuple(np.bincount(y[m], minlength=num_classes).tolist())
    rows = ([counts(y, m) for y, m in zip(labels, mask, strict=True)] if data_axis == 0
            else [counts(labels, mask)] * size)
    per_state = [baselines.sample_null(counts=c, dim=dim) for c in rows]
    out = keys.keyed(keys.SAMPLE, {k: np.array([r[k] for r in per_state]) for k in per_state[0]})
    if num_classes >= 3:
      means = baselines.gaussian_null(num_classes=num_classes, dim=dim)
      means |= baselines.simplex_etf(num_classes)
      for prefix in keys.SPLITS.values():
        out |= keys.keyed(prefix, {k: np.full(size, v, np.float32) for k, v in means.items()})
    return meshes.put(jax.tree.map(np.float32, out), everywhere)

  def evaluate(states: TrainState, splits: dict[str, Callable[[], Iterable[Batch]]],
               sample: Batch) -> dict:
    out: dict = {}
    for split, prefix in keys.SPLITS.items():
      sums = None
      for batch in splits[split]():
        if sums is None:
          sums, disagreements = start(states, batch, layers and split == "train")
        sums = accumulate(states, batch, sums)
      if sums is None:
        raise ValueError(f"the {split} split has no batches.")
      if split == "train":
        centres = sums.stats  # NC4 of every split: against the training class means
      for batch in splits[split]():
        disagreements = count_nc4(states, batch, centres, disagreements)
      metrics = summarise(states, sums, disagreements)
      split_keys = {keys.key(split, k): metrics.pop(k) for k in (keys.LOSS, keys.ACCURACY)}
      by_layer = {k: metrics.pop(k) for k in list(metrics) if k.startswith(keys.LAYER)}
      out |= {**split_keys, **keys.keyed(prefix, metrics), **by_layer}
    nulls = host_nulls(sample, centres.dim, len(out[keys.TRAIN_LOSS]))
    return out | samples(states, sample) | nulls | {keys.WEIGHT_NORM: norms(states.params)}

  return evaluate
