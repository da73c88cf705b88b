"""Training throughput on whatever devices JAX sees, 1 device against all of them.

For the digits CNN (8x8x1), ResNet-18 and WRN-28-2 (CIFAR-shaped 32x32x3 synthetic
inputs): examples/s of the jitted SGD train step on a mesh of 1 device and of every
device (data parallel), and the scaling efficiency (all / (devices x one)). Then the cost
of one whole-split metrics pass of the digits task (train + test splits, every logged
metric) and the host pipeline alone (digits batches/s built by the task's reader, the
same call the prefetch thread makes).

  python -m benchmarks.throughput                    # an accelerator host: real sizes
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m benchmarks.throughput --small
"""

import argparse
import time

import jax
import numpy as np

from benchmarks.timing import best_of, table
from experiments.common import digits_cnn_config, overridden
from ncjax.data import Batch
from ncjax.losses import cross_entropy
from ncjax.models import make_model
from ncjax.tasks import make_task
from ncjax.train import meshes
from ncjax.train.state import create_states, make_train_step

MODELS = {  # name: (model kwargs, input shape)
    "digits CNN": ({"name": "cnn", "channels": (32, 64), "features": 128}, (8, 8, 1)),
    "ResNet-18": ({"name": "resnet18"}, (32, 32, 3)),
    "WRN-28-2": ({"name": "wrn", "depth": 28, "width": 2}, (32, 32, 3)),
}


def examples_per_second(model_kwargs: dict, shape: tuple, batch: int, devices: int,
                        steps: int) -> float:
  """Examples/s of ``steps`` train steps at global ``batch`` on ``devices`` devices."""
  kwargs = dict(model_kwargs)
  config = overridden(digits_cnn_config(), {"mesh.data": devices, "batch_size": batch})
  mesh = meshes.make_mesh(config)
  model = make_model(kwargs.pop("name"), 10, **kwargs)
  state = create_states(config, model, np.zeros((1, *shape), np.float32), mesh)
  step = make_train_step(lambda logits, features, head, b: cross_entropy(
      logits, b.labels, mask=b.mask), mesh)
  rng = np.random.default_rng(0)
  data = meshes.put(Batch(rng.normal(size=(1, batch, *shape)).astype(np.float32),
                          rng.integers(0, 10, (1, batch)).astype(np.int32),
                          np.ones((1, batch), bool)), meshes.batch_sharding(mesh))

  def run():
    nonlocal state
    for _ in range(steps):
      state, loss = step(state, data)
    return loss

  return batch * steps / best_of(run, repeats=3)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--small", action="store_true", help="CPU sizes: batch 64, 3 steps")
  args = parser.parse_args()
  n = jax.device_count()
  batch, steps = (64, 3) if args.small else (512, 20)
  batch = -(-batch // n) * n
  print(f"{n} {jax.devices()[0].platform} device(s), {jax.process_count()} process(es); "
        f"global batch {batch}, {steps} steps a repeat")
  rows = []
  for name, (kwargs, shape) in MODELS.items():
    one = examples_per_second(kwargs, shape, batch, 1, steps)
    every = examples_per_second(kwargs, shape, batch, n, steps)
    rows.append([name, f"{one:.0f}", f"{every:.0f}", f"{every / one:.2f}x",
                 f"{every / (n * one):.0%}"])
  print(table(["model", "1 device ex/s", f"{n} devices ex/s", "speed-up", "efficiency"], rows))

  task = make_task(overridden(digits_cnn_config(), {"data.read_threads": 4}))
  states = create_states(task.config, task.model, task.example_inputs, task.mesh)
  t_metrics = best_of(lambda: task.evaluate(states), repeats=3)
  start, count = time.perf_counter(), 20
  for t in range(count):
    jax.block_until_ready(task.train_batch(t))
  t_batch = (time.perf_counter() - start) / count
  print(table(["digits metrics pass (1,797 images) s", "host pipeline batches/s (128)"],
              [[f"{t_metrics:.2f}", f"{1 / t_batch:.0f}"]]))


if __name__ == "__main__":
  main()
