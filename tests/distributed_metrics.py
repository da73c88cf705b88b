"""Run by tests/test_meshes.py as each of two processes (``python tests/distributed_metrics.py
PORT PROCESS_ID OUT``): ncjax's metrics on global arrays whose rows are split between the
processes (process 0 holds rows [0, 120), process 1 the rest); process 0 writes the values
as JSON to OUT. The data are tests/distributed_metrics.py's own seeded draw."""

import json
import sys

import jax
import numpy as np


def data():
  """(z1 (n, 6), z2 (n, 4), labels (n,), head (5, 6), stack (3, 6, 6)), n = 203."""
  rng = np.random.default_rng(0)
  n = 203
  z1 = rng.normal(size=(n, 6)).astype(np.float32) + 3.0
  z2 = rng.normal(size=(n, 4)).astype(np.float32)
  labels = rng.integers(0, 5, n).astype(np.int32)
  head = rng.normal(size=(5, 6)).astype(np.float32)
  a = rng.normal(size=(3, 6, 6)).astype(np.float32)
  return z1, z2, labels, head, a @ a.transpose(0, 2, 1)


def metrics(mesh, z1, z2, labels, head, stack, mask=None) -> dict:
  """The information metrics, class statistics and the collapse metrics of them (class
  pairs split) on the mesh, the eager core metrics and the sharded eigensolver, as floats."""
  import ncjax
  from ncjax import sharding

  on_mesh = dict(mask=mask, mesh=mesh)
  stats = ncjax.class_stats(z1, labels, num_classes=5, **on_mesh)
  eager = ncjax.class_stats(z1, labels, num_classes=5, mask=mask)
  collapse = ncjax.collapse_metrics(z1, labels, num_classes=5, head=head, mask=mask)
  values = {
      "mesh.matrix_entropy": ncjax.matrix_entropy(z1, **on_mesh),
      **{f"mesh.entropies.{i}": v for i, v in enumerate(ncjax.entropies(z1, z2, **on_mesh))},
      "mesh.mutual_information": ncjax.mutual_information(z1, z2, **on_mesh),
      "mesh.mir": ncjax.mir(z1, z2, **on_mesh),
      "mesh.hdr": ncjax.hdr(z1, z2, **on_mesh),
      "mesh.class_stats.nc1": ncjax.nc1(stats),
      "mesh.class_stats.vci": ncjax.vci(stats),
      "matrix_entropy": ncjax.matrix_entropy(z1, mask=mask),
      "mir": ncjax.mir(z1, z2, mask=mask),
      "hdr": ncjax.hdr(z1, z2, mask=mask),
      "nc1": ncjax.nc1(eager),
      "cdnv": ncjax.cdnv(eager),
      **{f"collapse_metrics.{k}": collapse[k] for k in ("nc1", "vci", "mir", "hdr", "nc4")},
      **{f"mesh.collapse_metrics_from_stats.{k}": v for k, v in
         ncjax.collapse_metrics_from_stats(stats, head=head, tile_size=2, mesh=mesh).items()},
  }
  values = {k: float(v) for k, v in values.items()}
  eig = np.asarray(sharding.eigvalsh(stack, mesh))
  return values | {f"sharding.eigvalsh.{i}": float(x) for i, x in enumerate(eig.ravel())}


def main(port: str, process_id: int, out: str) -> None:
  jax.distributed.initialize(f"127.0.0.1:{port}", 2, process_id, heartbeat_timeout_seconds=20,
                             initialization_timeout=60)
  from ncjax import sharding

  z1, z2, labels, head, stack = data()
  rows = slice(0, 120) if process_id == 0 else slice(120, None)
  mesh = sharding.sample_mesh()
  (g1, g2, gy), mask = sharding.shard_rows(mesh, z1[rows], z2[rows], labels[rows])
  values = metrics(mesh, g1, g2, gy, head, stack, mask=mask)
  if process_id == 0:
    with open(out, "w") as f:
      json.dump(values, f)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
