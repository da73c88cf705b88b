"""Metrics over a trajectory of 100 snapshots of the default grokking model, and vmapped
seeds vs sequential runs.

Trajectory, side by side: (a) ncjax analyze's chunked vmap (``analysis.evaluate``) of the
logged metrics; (b) a Python loop of per-snapshot jitted calls of the same function; (c) a
user of the authors' PyTorch code: load each snapshot into the model, forward pass, class
means, and every matrix entropy by a dense n x n eigvalsh (head vs means, C = 97 rows;
features vs w_y on the same 512 samples). (a) and (b) compute every collapse metric too.

Seeds: steps/s of 8 seeds as one vmapped TrainState vs 8 single-seed states stepped one
after another, full batch and batch 512.

  pip install torch==2.13.0   # benchmark only
  python -m benchmarks.trajectory
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import torch

import ncjax
from benchmarks.timing import best_of, table
from ncjax.analysis.trajectory import evaluate
from ncjax.keys import keyed
from ncjax.losses import cross_entropy
from ncjax.models import head_weights
from ncjax.tasks import make_task
from ncjax.train.config import base_config
from ncjax.train.state import create_states, make_loss, make_train_step

SNAPSHOTS, CHUNK, SEEDS = 100, 16, 8


def snapshots(task):
  """Parameters after each of the first SNAPSHOTS steps (host arrays, seed axis dropped)."""
  state = create_states(task.config, task.model, task.example_inputs, task.mesh)
  step, stream = make_train_step(make_loss(task.config), task.mesh), task.train_stream(0)
  out = []
  for _ in range(SNAPSHOTS):
    state, _ = step(state, next(stream))
    out.append(jax.tree.map(lambda x: np.asarray(x[0]), state.params))
  return out


def loss_and_accuracy(logits, labels):
  return cross_entropy(logits, labels), jnp.mean(jnp.argmax(logits, -1) == labels)


def metrics(apply_fn, params, train, test, num_classes, sample_size):
  """Every metric the trainer logs, for one snapshot whose splits fit in one batch."""
  out = {}
  w, b = head_weights(params)
  for name, prefix, (x, y, _) in (("train", "collapse", train), ("test", "test_collapse", test)):
    logits, features = apply_fn({"params": params}, x)
    out[f"{name}/loss"], out[f"{name}/accuracy"] = loss_and_accuracy(logits, y)
    out |= keyed(prefix, ncjax.collapse_metrics(features, y, num_classes=num_classes,
                                                head=w, bias=b))
    if name == "train":
      z, labels = features[:sample_size], y[:sample_size]
  h1, h2, h12 = ncjax.label_entropies(z, w, labels, mask=jnp.any(z != 0, axis=1))
  return out | keyed("sample", {"mir": ncjax.mir_from_entropies(h1, h2, h12),
                                "hdr": ncjax.hdr_from_entropies(h1, h2)})


def torch_entropy(z):
  """Matrix entropy by the dense route: eigvalsh of the n x n trace-normalised Gram."""
  zn = torch.nn.functional.normalize(z, dim=1)
  return entropy_of(zn @ zn.T)


def entropy_of(k):
  lam = torch.linalg.eigvalsh(k / torch.trace(k)).clamp(min=0)
  return -(torch.special.xlogy(lam, lam)).sum()


def torch_info(z1, z2):
  """MIR and HDR from three dense n x n eigendecompositions."""
  z1n, z2n = (torch.nn.functional.normalize(z, dim=1) for z in (z1, z2))
  h1, h2 = entropy_of(z1n @ z1n.T), entropy_of(z2n @ z2n.T)
  h12 = entropy_of((z1n @ z1n.T) * (z2n @ z2n.T))
  return (h1 + h2 - h12) / torch.minimum(h1, h2), (h1 - h2).abs() / torch.maximum(h1, h2)


def torch_snapshot_metrics(params, train, test, num_classes, sample_size):
  """What the PyTorch user computes for one snapshot (same model, same quantities)."""
  embed = torch.from_numpy(params["Embed_0"]["embedding"])
  dense = {k: torch.from_numpy(v) for k, v in params["Dense_0"].items()}
  head = {k: torch.from_numpy(v) for k, v in params["head"].items()}
  out = {}
  with torch.no_grad():
    for name, (x, y, _) in (("train", train), ("test", test)):
      x, y = (torch.from_numpy(np.asarray(a).astype(np.int64)) for a in (x, y))
      h = embed[x[:, :2]].reshape(len(x), -1) @ dense["kernel"] + dense["bias"]
      features = torch.relu(h)
      logits = features @ head["kernel"] + head["bias"]
      out[f"{name}/loss"] = torch.nn.functional.cross_entropy(logits, y)
      out[f"{name}/accuracy"] = (logits.argmax(1) == y).float().mean()
      if name == "train":
        z, labels = features, y
    w = head["kernel"].T
    means = torch.zeros(num_classes, z.shape[1]).index_add_(0, labels, z)
    means = means / torch.bincount(labels, minlength=num_classes)[:, None]
    out["collapse/mir"], out["collapse/hdr"] = torch_info(w, means - z.mean(0))
    out["sample/mir"], out["sample/hdr"] = torch_info(z[:sample_size], w[labels[:sample_size]])
  return out


def same_quantities(apply_fn, params, train, test, num_classes, sample_size):
  """ncjax computing only what (c) computes: losses, accuracies, MIR/HDR of both pairs."""
  out = {}
  for name, (x, y, _) in (("train", train), ("test", test)):
    logits, features = apply_fn({"params": params}, x)
    out[f"{name}/loss"], out[f"{name}/accuracy"] = loss_and_accuracy(logits, y)
    if name == "train":
      z, labels = features, y
  w, _ = head_weights(params)
  counts = jax.ops.segment_sum(jnp.ones_like(labels, z.dtype), labels, num_classes)
  means = jax.ops.segment_sum(z, labels, num_classes) / counts[:, None]
  pairs = {"collapse": ncjax.entropies(w, means - z.mean(0)),
           "sample": ncjax.label_entropies(z[:sample_size], w, labels[:sample_size])}
  for key, (h1, h2, h12) in pairs.items():
    out[f"{key}/mir"], out[f"{key}/hdr"] = (ncjax.mir_from_entropies(h1, h2, h12),
                                            ncjax.hdr_from_entropies(h1, h2))
  return out


def trajectory(config):
  task = make_task(config)
  params = snapshots(task)
  at0 = lambda s: jax.tree.map(lambda x: np.asarray(x[0]), s)
  train, test = at0(task.train), at0(task.test)
  classes, model = task.num_classes, task.model
  fn = functools.partial(metrics, model.apply, train=train, test=test,
                         num_classes=classes, sample_size=config.sample_size)
  jitted = jax.jit(fn)
  subset = functools.partial(same_quantities, model.apply, train=train, test=test,
                             num_classes=classes, sample_size=config.sample_size)
  t_a = best_of(lambda: evaluate(fn, params, CHUNK, progress=False), repeats=2)
  t_subset = best_of(lambda: evaluate(subset, params, CHUNK, progress=False), repeats=2)
  t_b = best_of(lambda: [jax.device_get(jitted(p)) for p in params], repeats=2)
  t_c = best_of(lambda: [torch_snapshot_metrics(p, train, test, classes,
                                                config.sample_size) for p in params],
                repeats=2)
  # The same numbers, checked on the last snapshot.
  ours, theirs = jax.device_get(jitted(params[-1])), torch_snapshot_metrics(
      params[-1], train, test, classes, config.sample_size)
  gap = max(abs(float(theirs[k]) - float(ours[k])) / max(abs(float(ours[k])), 1e-3)
            for k in theirs)
  chunk = jax.tree.map(lambda *xs: np.stack(xs), *params[:CHUNK])
  memory = jax.jit(jax.vmap(fn)).lower(chunk).compile().memory_analysis()
  print(f"{SNAPSHOTS} snapshots of {config.name}; chunk {CHUNK}; "
        f"max relative gap torch vs ncjax on the last snapshot {gap:.1e}; "
        f"device memory per chunk (temp) {memory.temp_size_in_bytes / 2**20:.0f} MiB")
  print(table(["(a) ncjax vmapped chunks s", "(b) loop of jitted calls s",
               "(c) torch dense eigvalsh s", "(c) / (a)", "(b) / (a)",
               "(a') ncjax, (c)'s quantities only s", "(c) / (a')"],
              [[f"{t_a:.2f}", f"{t_b:.2f}", f"{t_c:.2f}", f"{t_c / t_a:.2f}x",
                f"{t_b / t_a:.2f}x", f"{t_subset:.2f}", f"{t_c / t_subset:.2f}x"]]))


def seeds(config, batch_size, steps=20):
  """Seconds per step of SEEDS seeds: one vmapped state vs SEEDS states one after another."""

  def run(num_seeds, repeat):
    c = config.copy_and_resolve_references()
    c.num_seeds, c.batch_size = num_seeds, batch_size
    task = make_task(c)
    step = make_train_step(make_loss(task.config), task.mesh)
    states = [create_states(c, task.model, task.example_inputs, task.mesh)
              for _ in range(repeat)]
    streams = [task.train_stream(0) for _ in range(repeat)]

    def go():
      nonlocal states
      for _ in range(steps):
        states = [step(s, next(d))[0] for s, d in zip(states, streams, strict=True)]
      return states
    return best_of(go, repeats=3) / steps

  together, apart = run(SEEDS, 1), run(1, SEEDS)
  return together, apart


def main():
  torch.set_num_threads(2)
  config = base_config()
  config.name = "a+b mod 97, embedding MLP, 50% train"
  trajectory(config)
  rows = []
  for batch_size in (None, 512):
    together, apart = seeds(config, batch_size)
    rows.append([batch_size or "full (4,704)", f"{SEEDS / together:.1f}",
                 f"{SEEDS / apart:.1f}", f"{apart / together:.2f}x"])
  print(table(["batch", f"{SEEDS} vmapped seeds: seed-steps/s",
               f"{SEEDS} sequential: seed-steps/s", "speed-up"], rows))


if __name__ == "__main__":
  main()
