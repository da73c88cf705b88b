"""Collapse metrics over a dataset, streamed in batches: ncjax vs the PyTorch reference way.

Both make two passes over N = 50,000 features (d = 512, C = 100) in batches of 5,000 and
compute the same metrics (NC1, VCI, CDNV, the NC2 terms, NC3, NC4): ncjax accumulates
ClassStats (pass 1), computes the metrics from them, and counts NC4 disagreements
against the accumulated means (pass 2); its time for every collapse metric is printed
beside. The reference follows the public
PyTorch code (Papyan's notebook, rhubarbwu/neural-collapse): class means in pass 1;
within-class covariance, per-class variances and NC4 in pass 2; then NC1 and VCI with
torch.linalg.pinv of d x d matrices, NC2/NC3/CDNV from the means.

The floor beside them: the N d^2 scatter alone, one jitted X^T X per batch (full, and
one triangle of blocks as ClassStats computes it), and torch's X^T X.

  pip install torch==2.13.0   # benchmark only
  python -m benchmarks.collapse
"""

import jax
import jax.numpy as jnp
import numpy as np

import ncjax
from benchmarks.timing import best_of, optional_torch, table

torch = optional_torch()

N, D, C, BATCH = 50_000, 512, 100, 5_000


def make_data(seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, C, N)
  means = rng.normal(size=(C, D)) * 2
  h = (means[y] + rng.normal(size=(N, D)) + 3.0).astype(np.float32)
  w = (means + 0.3 * rng.normal(size=(C, D))).astype(np.float32)
  return h, y.astype(np.int32), w, rng.normal(size=C).astype(np.float32)


@jax.jit
def ncjax_stats(h, y):
  """Pass 1: ClassStats over batches, scanned on device."""
  batches = (h.reshape(-1, BATCH, D), y.reshape(-1, BATCH))
  step = lambda s, b: (s.update(*b), None)
  return jax.lax.scan(step, ncjax.ClassStats.empty(num_classes=C, dim=D), batches)[0]


def _nc4(stats, h, w, b):
  """Pass 2: NC4 against the accumulated means, batch by batch."""
  per_batch = jax.lax.map(lambda hb: ncjax.nc4(stats, hb, head=w, bias=b),
                          h.reshape(-1, BATCH, D))
  return jnp.mean(per_batch)


@jax.jit
def ncjax_metrics(h, y, w, b):
  """The reference's metrics: NC1, VCI, CDNV, the NC2 terms, NC3 and NC4."""
  stats = ncjax_stats(h, y)
  out = {"nc1": ncjax.nc1(stats), "vci": ncjax.vci(stats), "cdnv": ncjax.cdnv(stats),
         "nc3": ncjax.nc3(stats, head=w)} | ncjax.nc2(stats, head=w)
  return out | {"nc4": _nc4(stats, h, w, b)}


@jax.jit
def ncjax_every_metric(h, y, w, b):
  """Every collapse metric: the reference's plus GNC2, UNC3, RankMe, the entropies and
  MIR/HDR of means and head."""
  stats = ncjax_stats(h, y)
  return ncjax.collapse_metrics_from_stats(stats, head=w) | {"nc4": _nc4(stats, h, w, b)}


def _summed_over_batches(product):
  """The floor: h -> the sum over batches x of ``product(x)``, a (D, D) scatter, jitted."""
  return jax.jit(lambda h: jax.lax.scan(lambda s, x: (s + product(x), None),
                                        jnp.zeros((D, D)), h.reshape(-1, BATCH, D))[0])


xla_scatter = _summed_over_batches(lambda x: x.T @ x)  # the full X^T X
xla_triangle = _summed_over_batches(ncjax.kernels.gram)  # one triangle of blocks


def torch_scatter(h):
  out = torch.zeros(D, D)
  for hb in torch.split(h, BATCH):
    out += hb.T @ hb
  return out


def torch_reference(h, y, w, b):
  h_batches, y_batches = torch.split(h, BATCH), torch.split(y, BATCH)
  counts = torch.bincount(y, minlength=C).double()
  sums = torch.zeros(C, D)
  for hb, yb in zip(h_batches, y_batches, strict=True):  # pass 1: class means
    sums.index_add_(0, yb, hb)
  means = sums / counts[:, None].float()
  mu_g = h.mean(0)
  sw = torch.zeros(D, D)
  var = torch.zeros(C)
  disagree = 0
  for hb, yb in zip(h_batches, y_batches, strict=True):  # pass 2: covariance, variances, NC4
    centred = hb - means[yb]
    sw += centred.T @ centred
    var.index_add_(0, yb, (centred**2).sum(1))
    network = (hb @ w.T + b).argmax(1)
    nearest = torch.cdist(hb, means).argmin(1)
    disagree += (network != nearest).sum().item()
  sw /= N
  m = means - mu_g
  sb = m.T @ m / C
  out = {"nc1": torch.trace(sw @ torch.linalg.pinv(sb, hermitian=True)) / C}
  sb_w = (m * (counts.float() / N)[:, None]).T @ m
  st = sw + sb_w
  rank = torch.linalg.matrix_rank(sb_w, hermitian=True)
  out["vci"] = 1 - torch.trace(torch.linalg.pinv(st, hermitian=True) @ sb_w) / rank
  var = var / counts.float()
  dist = torch.cdist(means, means) ** 2
  iu = torch.triu_indices(C, C, 1)
  out["cdnv"] = ((var[:, None] + var[None, :]) / (2 * dist))[iu[0], iu[1]].mean()
  for name, x in (("means", m), ("head", w)):
    norms = x.norm(dim=1)
    out[f"equinorm_{name}"] = norms.std(unbiased=False) / norms.mean()
    xn = x / norms[:, None]
    cos = (xn @ xn.T)[~torch.eye(C, dtype=bool)]
    out[f"equiangular_{name}"] = cos.std(unbiased=False)
    out[f"maxangle_{name}"] = (cos + 1 / (C - 1)).abs().mean()
  out["nc3"] = ((w / w.norm() - m / m.norm()) ** 2).sum()
  out["nc4"] = torch.tensor(disagree / N)
  return out


def main():
  torch.set_num_threads(2)
  h, y, w, b = make_data()
  args = [jnp.asarray(a) for a in (h, y, w, b)]
  targs = [torch.from_numpy(a) for a in (h, y.astype(np.int64), w, b)]
  ours = {k: float(v) for k, v in ncjax_metrics(*args).items()}
  theirs = {k: float(v) for k, v in torch_reference(*targs).items()}
  worst = max(abs(ours[k] - v) / max(abs(v), 1e-3) for k, v in theirs.items())
  for key, value in theirs.items():  # same numbers before timing anything
    np.testing.assert_allclose(ours[key], value, rtol=1e-3, atol=1e-5, err_msg=key)
  t_ours = best_of(ncjax_metrics, *args, repeats=3)
  t_every = best_of(ncjax_every_metric, *args, repeats=3)
  t_ref = best_of(torch_reference, *targs, repeats=3)
  t_full = best_of(xla_scatter, args[0], repeats=3)
  t_triangle = best_of(xla_triangle, args[0], repeats=3)
  t_torch_full = best_of(torch_scatter, targs[0], repeats=3)
  state_mb = sum(x.nbytes for x in jax.tree.leaves(ncjax_stats(*args[:2]))) / 2**20
  print(f"collapse metrics, N={N}, d={D}, C={C}, batches of {BATCH}, float32, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; largest "
        f"relative difference of a metric {worst:.1e}")
  print(table(["ncjax s", "torch reference s", "reference / ncjax", "ncjax, every metric s",
               "ClassStats MiB"],
              [[f"{t_ours:.3f}", f"{t_ref:.3f}", f"{t_ref / t_ours:.2f}x", f"{t_every:.3f}",
                f"{state_mb:.2f}"]]))
  print("The N d^2 scatter alone (the floor of both):")
  print(table(["XLA X^T X s", "XLA one triangle s", "torch X^T X s", "full / triangle",
               "ncjax / triangle floor", "reference / torch floor"],
              [[f"{t_full:.3f}", f"{t_triangle:.3f}", f"{t_torch_full:.3f}",
                f"{t_full / t_triangle:.2f}x", f"{t_ours / t_triangle:.2f}x",
                f"{t_ref / t_torch_full:.2f}x"]]))
  print("ClassStats is O(C d + d^2) whatever N; both stream the features in batches.")


if __name__ == "__main__":
  main()
