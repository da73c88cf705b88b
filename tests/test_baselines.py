"""Chance levels against float64 NumPy references on the same draws, the numbers of
issue 38, and the simplex-ETF closed forms."""

import jax
import numpy as np
import pytest

from ncjax import baselines, keys
from tests import reference as ref


def _summary(rows: list[dict]) -> dict:
  return {f"{k}_null{s}": f(np.array([r[k] for r in rows]))
          for k in rows[0] for s, f in (("", np.mean), ("_std", np.std))}


def _gaussian_reference(num_classes, dim, draws, seed):
  """The draws of ``gaussian_draws`` (same keys), measured in float64 NumPy."""
  rows, labels = [], np.arange(num_classes)
  for k in jax.random.split(jax.random.key(seed), draws):
    k_head, k_means = jax.random.split(k)
    w = np.float64(jax.random.normal(k_head, (num_classes, dim)))
    g = np.float64(jax.random.normal(k_means, (num_classes, dim)))
    m = g - g.mean(0)
    rows.append({"entropy_head": ref.matrix_entropy(w), "entropy_means": ref.matrix_entropy(m),
                 "mi": ref.mutual_information(w, m), "mir": ref.mir(w, m), "hdr": ref.hdr(w, m),
                 "nc3": ref.nc3(g, labels, num_classes, w),
                 "unc3": ref.unc3(g, labels, num_classes, w)})
  return _summary(rows)


@pytest.mark.parametrize("num_classes, dim", [*(pytest.param(*p, marks=pytest.mark.slow) for p in ((10, 128), (113, 128))), (7, 3)])
def test_gaussian_null_equals_float64_on_the_same_draws(num_classes, dim):
  got = baselines.gaussian_null(num_classes=num_classes, dim=dim, draws=8, seed=3)
  want = _gaussian_reference(num_classes, dim, draws=8, seed=3)
  assert set(got) == set(want)
  for key, value in want.items():
    np.testing.assert_allclose(got[key], value, rtol=1e-3, atol=2e-5, err_msg=key)


@pytest.mark.parametrize("num_classes, mir", [(10, 0.986), (113, 0.899)])
def test_independent_head_and_means_reproduce_the_issue_numbers(num_classes, mir):
  """Issue 38: random W and M (C x 128) give MIR 0.986 at C = 10, 0.899 at C = 113."""
  null = baselines.gaussian_null(num_classes=num_classes, dim=128)
  assert abs(null["mir_null"] - mir) < 0.003
  assert 0 < null["mir_null_std"] < 0.005


def test_chance_mir_at_ten_classes_exceeds_the_simplex_etf():
  """The MIR of a collapsed network can sit below that of an untrained one."""
  assert baselines.gaussian_null(num_classes=10, dim=128)["mir_null"] > (
      baselines.simplex_etf(10)["mir_etf"] + 0.02)


def test_gaussian_null_is_computed_once_per_shape():
  first = baselines.gaussian_null(num_classes=5, dim=4)
  assert baselines.gaussian_null(num_classes=5, dim=4) is first
  assert baselines.gaussian_null(num_classes=5, dim=4, seed=1) != first


@pytest.mark.parametrize("num_classes", [3, 10, 113])
def test_simplex_etf_closed_forms_equal_float64(num_classes):
  m = ref.simplex_etf(num_classes, num_classes + 3)
  got = baselines.simplex_etf(num_classes)
  want = {"entropy_head": np.log(num_classes - 1), "entropy_means": ref.matrix_entropy(m),
          "mi": ref.mutual_information(m, m), "mir": ref.mir(m, m), "hdr": ref.hdr(m, 2 * m)}
  for key, value in want.items():
    np.testing.assert_allclose(got[f"{key}_etf"], value, rtol=1e-9, atol=1e-12, err_msg=key)


def test_sample_null_equals_float64_on_the_same_draws():
  counts, dim, draws = (3, 0, 4, 2), 5, 8
  labels = np.repeat(np.arange(len(counts)), counts)
  rows = []
  for k in jax.random.split(jax.random.key(0), draws):
    k_z, k_w = jax.random.split(k)
    z = np.float64(jax.random.normal(k_z, (len(labels), dim)))
    w = np.float64(jax.random.normal(k_w, (len(counts), dim)))[labels]
    rows.append({"mir": ref.mir(z, w), "hdr": ref.hdr(z, w),
                 "entropy_features": ref.matrix_entropy(z), "entropy_head": ref.matrix_entropy(w)})
  got = baselines.sample_null(counts=counts, dim=dim, draws=draws)
  for key, value in _summary(rows).items():
    np.testing.assert_allclose(got[key], value, rtol=1e-3, atol=2e-5, err_msg=key)


def test_permuted_labels_shuffle_kept_rows_only():
  labels = np.arange(40) % 5
  mask = np.arange(40) < 33
  y = np.asarray(baselines.permuted_labels(jax.random.key(2), labels, mask))
  np.testing.assert_array_equal(np.sort(y[mask]), np.sort(labels[mask]))
  np.testing.assert_array_equal(y[~mask], labels[~mask])
  assert np.mean(y[mask] != labels[mask]) > 0.5


def _check_permutation_null(null) -> None:
  """``null`` (permutation_null, jitted or not) against float64 metrics of the permuted
  labels, and far from the true labels' NC1."""
  rng = np.random.default_rng(0)
  n, d, c = 90, 6, 4
  y = np.arange(n) % c
  h = np.float32(2 * rng.normal(size=(c, d))[y] + rng.normal(size=(n, d)))
  mask = np.arange(n) < 84
  key = jax.random.key(1)
  got = null(h, y, num_classes=c, key=key, draws=8, mask=mask)
  rows = []
  for k in jax.random.split(key, 8):
    yp = np.asarray(baselines.permuted_labels(k, y, mask))[mask]
    hp = h[mask]
    rows.append({"nc1": ref.nc1(hp, yp, c), "vci": ref.vci(hp, yp, c),
                 "cdnv": ref.cdnv(hp, yp, c), "gnc2": ref.gnc2(hp, yp, c),
                 **{k: v for k, v in ref.nc2(hp, yp, c, np.eye(c, d)).items()
                    if k.endswith("_means")}})
  want = _summary(rows)
  assert set(got) == set(want)
  for key_, value in want.items():
    np.testing.assert_allclose(got[key_], value, rtol=2e-4, atol=1e-6, err_msg=key_)
  # permuted labels leave the features uncollapsed: far from the true labels' NC1
  assert got["nc1_null"] > 10 * ref.nc1(h[mask], y[mask], c)


def test_jitted_permutation_null_equals_float64_metrics_of_the_permuted_labels():
  _check_permutation_null(jax.jit(baselines.permutation_null,
                                  static_argnames=("num_classes", "draws")))


@pytest.mark.slow
def test_eager_permutation_null_equals_float64_metrics_of_the_permuted_labels():
  _check_permutation_null(baselines.permutation_null)


def test_permuted_sums_streamed_equal_class_stats_of_the_permuted_labels():
  """Two batches, the second's scale 64x the first's (the frame grows), padded rows in
  both: the draws' statistics built from class sums and the true labels' total scatter
  give the metrics of ClassStats of the permuted labels themselves."""
  from ncjax.stats import ClassStats

  rng = np.random.default_rng(0)
  c, d, draws = 5, 7, 3
  batches = []
  n = 40
  for size, kept in ((1.0, n - 1), (64.0, 30)):
    y = np.arange(n) % c
    h = np.float32(size * (rng.normal(size=(c, d))[y] + rng.normal(size=(n, d))) + 3.0)
    batches.append((h, y, np.arange(n) < kept))
  draw_keys = jax.random.split(jax.random.key(0), draws)

  @jax.jit  # one program for both batches (the same shapes)
  def update(stats, sums, direct, h, y, mask):
    permuted = jax.vmap(baselines.permuted_labels, in_axes=(0, None, None))(draw_keys, y, mask)
    stats = stats.update(h, y, mask)
    return (stats, sums.update(stats, h, permuted, mask),
            jax.vmap(lambda s, yp: s.update(h, yp, mask))(direct, permuted))

  stats, sums = ClassStats.empty(num_classes=c, dim=d), baselines.PermutedSums.empty(draws, c, d)
  direct = jax.tree.map(lambda x: np.broadcast_to(x, (draws, *x.shape)),
                        ClassStats.empty(num_classes=c, dim=d))
  for h, y, mask in batches:
    stats, sums, direct = update(stats, sums, direct, h, y, mask)
  got = jax.jit(baselines.permuted_metrics)(stats, sums)
  want = jax.jit(jax.vmap(baselines.permutation_metrics))(direct)
  for k in keys.PERMUTATION_METRICS:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("fn, kwargs, name", [
    (baselines.gaussian_null, dict(num_classes=2, dim=4), "num_classes"),
    (baselines.gaussian_null, dict(num_classes=4, dim=0), "dim"),
    (baselines.simplex_etf, dict(num_classes=2), "num_classes"),
    (baselines.sample_null, dict(counts=(1, 0), dim=3), "counts")])
def test_bad_shapes_are_refused(fn, kwargs, name):
  with pytest.raises(ValueError, match=name):
    fn(**kwargs)
