"""Collapse metrics against float64 references, closed forms and invariances."""

import re
import warnings

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import ncjax
from tests import reference as ref

STATS_METRICS = ("nc1", "cdnv", "vci")


def dataset(n=240, d=12, c=5, seed=0, spread=1.0, offset=0.0):
  """Gaussian classes around random means; every class present."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  rng.shuffle(y)
  means = 3 * rng.normal(size=(c, d))
  h = means[y] + spread * rng.normal(size=(n, d)) + offset
  head = means + 0.5 * rng.normal(size=(c, d))
  bias = rng.normal(size=c)
  return h, y, head, bias


def etf_configuration(c=5, d=8, r=3.0, s=0.5, offset=7.0):
  """Means r * simplex ETF + offset; class c has samples mu_c +/- s sqrt(d) e_j, j < d.

  Then Sigma_W = s^2 I exactly and (balanced) Sigma_B = r^2/(C-1) P, P the projector on
  the ETF's (C-1)-dim span.
  """
  means = r * ref.simplex_etf(c, d) + offset
  steps = s * np.sqrt(d) * np.r_[np.eye(d), -np.eye(d)]
  h = (means[:, None, :] + steps[None]).reshape(-1, d)
  y = np.repeat(np.arange(c), 2 * d)
  return h, y, means - offset


def f32(*xs):
  return [jnp.asarray(x, jnp.float32) for x in xs]


def heads(head, bias=None):
  """Keyword arguments head= (and bias=) as float32."""
  return {"head": jnp.float32(head)} | ({} if bias is None else {"bias": jnp.float32(bias)})


class ReferenceTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*STATS_METRICS)
  def test_stats_metric(self, name):
    h, y, _, _ = dataset()
    fn = self.variant(lambda h, y: getattr(ncjax, name)(ncjax.class_stats(h, y, num_classes=5)))
    np.testing.assert_allclose(fn(*f32(h), jnp.asarray(y)), getattr(ref, name)(h, y, 5),
                               rtol=1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_collapse_metrics_dict(self):
    h, y, head, bias = dataset(seed=1)
    fn = self.variant(ncjax.collapse_metrics, static_argnames="num_classes")
    got = fn(*f32(h), jnp.asarray(y), num_classes=5, **heads(head, bias))
    want = {k: v for k, v in ref.nc2(h, y, 5, head).items()}
    want |= {k: getattr(ref, k)(h, y, 5) for k in STATS_METRICS}
    want["nc3"] = ref.nc3(h, y, 5, head)
    want["unc3"] = ref.unc3(h, y, 5, head)
    want["gnc2"] = ref.gnc2(h, y, 5)
    want["nc4"] = ref.nc4(h, y, 5, head, bias)
    want["effective_rank"] = ref.effective_rank(h)
    m = ref.class_moments(h, y, 5)["m"]
    want["mir"] = ref.mir(head, m)
    want["hdr"] = ref.hdr(head, m)
    want["entropy_head"] = ref.matrix_entropy(head)
    want["entropy_means"] = ref.matrix_entropy(m)
    for key, value in want.items():
      np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-6, err_msg=key)

  @pytest.mark.slow
  def test_absent_class_drops_out(self):
    """C=7 with classes 5 and 6 absent equals C=5 on the same data."""
    h, y, head, bias = dataset(seed=2)
    extra = np.random.default_rng(0).normal(size=(2, 12))
    full = ncjax.collapse_metrics(*f32(h), y, num_classes=5, **heads(head, bias))
    padded = ncjax.collapse_metrics(*f32(h), y, num_classes=7, **heads(np.r_[head, extra], np.r_[bias, -1e9, -1e9]))
    for key in full:
      np.testing.assert_allclose(padded[key], full[key], rtol=1e-5, atol=1e-6, err_msg=key)
      self.assertTrue(np.isfinite(padded[key]), key)

  def test_mask_equals_dropping_rows(self):
    h, y, head, bias = dataset(seed=3)
    mask = np.random.default_rng(1).random(len(y)) < 0.7
    garbage = np.where(mask[:, None], h, np.nan)
    got = ncjax.collapse_metrics(*f32(garbage), y, num_classes=5, **heads(head, bias), mask=jnp.asarray(mask))
    want = ncjax.collapse_metrics(*f32(h[mask]), y[mask], num_classes=5, **heads(head, bias))
    for key in want:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


class ClosedFormTest(parameterized.TestCase):

  @parameterized.parameters((5, 8, 3.0, 0.5), (10, 12, 1.0, 0.2), (3, 3, 2.0, 1.5))
  def test_etf_configuration(self, c, d, r, s):
    h, y, m = etf_configuration(c, d, r, s)
    hj, yj = jnp.float32(h), jnp.asarray(y)
    a = r**2 / (c - 1)  # eigenvalue of Sigma_B on the ETF span
    st = ncjax.class_stats(hj, yj, num_classes=c)
    np.testing.assert_allclose(ncjax.nc1(st), s**2 * (c - 1) ** 2 / (r**2 * c),
                               rtol=1e-4)
    np.testing.assert_allclose(ncjax.cdnv(st), s**2 * d * (c - 1) / (2 * r**2 * c),
                               rtol=1e-4)
    np.testing.assert_allclose(ncjax.vci(st), s**2 / (s**2 + a), rtol=1e-4)

  def test_etf_head_vanishing_nc2_nc3_nc4(self):
    h, y, m = etf_configuration(c=6, d=8)
    head = 2.5 * m  # W proportional to M
    mu_g = h.mean(0)
    bias = -head @ mu_g  # equal norms: argmax(W h + b) = nearest class mean
    out = ncjax.collapse_metrics(*f32(h), y, num_classes=6, **heads(head, bias))
    for key in ("equinorm_means", "equiangular_means", "maxangle_means", "equinorm_head",
                "equiangular_head", "maxangle_head", "nc3", "unc3", "nc4"):
      self.assertAlmostEqual(float(out[key]), 0.0, places=5, msg=key)
    self.assertAlmostEqual(float(out["hdr"]), 0.0, places=5)
    self.assertAlmostEqual(float(out["entropy_means"]), np.log(5), places=4)
    self.assertAlmostEqual(float(out["gnc2"]), -0.5 * np.log(2 * 6 / 5), places=5)

  def test_unc3_zero_for_head_rows_along_their_means_at_any_lengths(self):
    h, y, head, _ = dataset(seed=12)
    m = ref.class_moments(h, y, 5)["m"]
    aligned = m * np.array([0.5, 1.0, 2.0, 3.0, 7.0])[:, None]
    s = ncjax.class_stats(jnp.float32(h), y, num_classes=5)
    unc3 = lambda w: float(ncjax.unc3(s, head=jnp.float32(w)))
    self.assertAlmostEqual(unc3(aligned), 0.0, places=6)
    self.assertGreater(unc3(head), 1e-3)

  def test_nc5_closed_forms(self):
    """OOD mean orthogonal to the ETF span: 0; along one class mean: (1 + 1) / C."""
    c, d = 5, 8
    h, y, m = etf_configuration(c=c, d=d)
    s = ncjax.class_stats(jnp.float32(h), y, num_classes=c)
    basis = np.linalg.svd(m)[2]  # rows c-1.. span the complement of the means
    mu_g = h.mean(0)
    noise = np.random.default_rng(0).normal(size=(50, d - c + 1)) @ basis[c - 1:]
    ood = mu_g + 4.0 * basis[-1] + noise
    self.assertAlmostEqual(float(ncjax.nc5(s, jnp.float32(ood))), 0.0, places=5)
    along = mu_g + 3.0 * m[0] + np.zeros((7, d))
    self.assertAlmostEqual(float(ncjax.nc5(s, jnp.float32(along))), 2.0 / c, places=5)

  def test_vci_zero_and_nc1_zero_at_full_collapse(self):
    h, y, _ = etf_configuration(s=0.0)
    s = ncjax.class_stats(jnp.float32(h), y, num_classes=5)
    self.assertAlmostEqual(float(ncjax.vci(s)), 0.0, places=5)
    self.assertAlmostEqual(float(ncjax.nc1(s)), 0.0, places=6)


class ManyClassesTest(parameterized.TestCase):
  """C > d, absent classes, masks: the d x d NC1 route and the tiles against references."""

  def data(self, c=11, d=6, n=400, seed=13, offset=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    y[np.isin(y, (2, 7))] = 3  # classes 2 and 7 absent
    means = 3 * rng.normal(size=(c, d))
    h = means[y] + rng.normal(size=(n, d)) + offset
    return h, y, means + 0.5 * rng.normal(size=(c, d)), rng.normal(size=c)

  @parameterized.parameters(0.0, 1e4)
  def test_against_references(self, offset):
    h, y, head, bias = self.data(offset=offset)
    s = ncjax.class_stats(jnp.float32(h), y, num_classes=11)
    present = ref.class_moments(h, y, 11)["present"]
    rtol = 1e-4 if offset == 0 else 2e-3
    for name in ("nc1", "cdnv", "vci", "gnc2"):
      np.testing.assert_allclose(getattr(ncjax, name)(s), getattr(ref, name)(h, y, 11),
                                 rtol=rtol, err_msg=name)
    np.testing.assert_allclose(ncjax.unc3(s, head=jnp.float32(head)), ref.unc3(h, y, 11, head),
                               rtol=rtol)
    for key, value in ref.nc2(h, y, 11, head).items():
      np.testing.assert_allclose(ncjax.nc2(s, head=jnp.float32(head))[key], value, rtol=rtol,
                                 err_msg=key)
    np.testing.assert_allclose(ncjax.nc4(s, jnp.float32(h), head=jnp.float32(head),
                                         bias=jnp.float32(bias)),
                               ref.nc4(h, y, 11, head, bias), atol=1e-6)
    logits = jnp.float32(h) @ jnp.float32(head).T + jnp.float32(bias)  # a forward pass's
    np.testing.assert_allclose(ncjax.nc4(s, jnp.float32(h), logits=logits),
                               ref.nc4(h, y, 11, head, bias), atol=1e-6)
    ood = np.random.default_rng(1).normal(size=(60, 6)) + offset + 1.0
    np.testing.assert_allclose(ncjax.nc5(s, jnp.float32(ood)), ref.nc5(h, y, 11, ood), rtol=rtol)
    got = ncjax.nci_score(s, jnp.float32(ood), head=jnp.float32(head), bias=jnp.float32(bias),
                          alpha=1e-4)
    want = ref.nci_score(h, y, 11, head, bias, np.float32(ood), 1e-4)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3 if offset else 1e-5)
    ood_logits = jnp.float32(ood) @ jnp.float32(head).T + jnp.float32(bias)
    got = ncjax.nci_score(s, jnp.float32(ood), head=jnp.float32(head), logits=ood_logits,
                          alpha=1e-4)
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3 if offset else 1e-5)
    self.assertLen(present, 9)

  @parameterized.parameters(1, 3, 4, 10)
  def test_tiled_equals_dense(self, tile_size):
    h, y, head, bias = self.data()
    mask = jnp.asarray(np.random.default_rng(2).random(len(y)) < 0.8)
    kw = dict(num_classes=11, head=jnp.float32(head), bias=jnp.float32(bias), mask=mask)
    dense = ncjax.collapse_metrics(jnp.float32(h), y, **kw)  # 11 <= TILE: one block
    tiled = ncjax.collapse_metrics(jnp.float32(h), y, **kw, tile_size=tile_size)
    self.assertEqual(set(tiled), set(dense))
    for key in dense:
      np.testing.assert_allclose(tiled[key], dense[key], rtol=1e-5, atol=1e-7, err_msg=key)

  def test_no_class_by_class_or_sample_by_class_arrays(self):
    """The compiled programs hold no C x C block (pairs by tiles) and no n x C one-hot."""
    c, d, n, t = 3000, 8, 64, 256
    s = jax.ShapeDtypeStruct
    stats = jax.eval_shape(lambda: ncjax.ClassStats.empty(num_classes=c, dim=d))
    update = jax.jit(ncjax.ClassStats.update).lower(
        stats, s((n, d), jnp.float32), s((n,), jnp.int32)).as_text()
    self.assertFalse(f"<{n}x{c}x" in update, "an n x C array in ClassStats.update")
    metrics = jax.jit(lambda st, w: ncjax.collapse_metrics_from_stats(
        st, head=w, tile_size=t, joint_entropy=False)).lower(stats, s((c, d), jnp.float32)).as_text()
    self.assertFalse(f"<{c}x{c}x" in metrics, "a C x C array in collapse_metrics_from_stats")
    self.assertTrue(f"<{t}x{c}x" in metrics, "no (tile, C) block")  # the tiles are there

  @pytest.mark.slow
  def test_compiles_once_per_tile_size(self):
    fn = jax.jit(chex.assert_max_traces(ncjax.collapse_metrics, n=2),
                 static_argnames=("num_classes", "tile_size"))
    chex.clear_trace_counter()
    for tile_size in (3, 4):  # 11 classes: 4 blocks (1 padded row) and 3 (1 padded)
      for seed in range(3):
        h, y, head, bias = self.data(seed=seed)
        fn(jnp.float32(h), y, num_classes=11, head=jnp.float32(head), tile_size=tile_size)

  def pair_metrics_against_float64(self, c, d, precision, tile_size):
    """The pairwise metrics with ``precision`` within 1e-5 of the float64 references; a
    precision the backend refuses warns and gives HIGHEST's values exactly."""
    rng = np.random.default_rng(c)
    y = rng.integers(0, c, 6 * c)
    h = np.float32(rng.normal(size=(c, d))[y] + 0.5 * rng.normal(size=(len(y), d)))
    head = np.float32(rng.normal(size=(c, d)))
    s = ncjax.class_stats(h, y, num_classes=c)
    pairs = jax.jit(lambda s, w, precision: ncjax.nc2(
        s, head=w, tile_size=tile_size, precision=precision) | {
            "cdnv": ncjax.cdnv(s, tile_size=tile_size, precision=precision),
            "gnc2": ncjax.gnc2(s, tile_size=tile_size, precision=precision)},
        static_argnums=2)
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      got = pairs(s, head, precision)
    want = ref.nc2(h, y, c, head) | {"cdnv": ref.cdnv(h, y, c), "gnc2": ref.gnc2(h, y, c)}
    for key, value in want.items():
      np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=key)
    if any("is not supported on" in str(w.message) for w in caught):
      chex.assert_trees_all_equal(got, pairs(s, head, jax.lax.Precision.HIGHEST))

  @parameterized.parameters("highest", "BF16_BF16_F32_X3",
                            jax.lax.DotAlgorithmPreset.TF32_TF32_F32_X3)
  def test_pair_gram_precision_within_1e5_of_float64(self, precision):
    """On CPU XLA runs the BF16 presets in float32 and refuses TF32 (ncjax falls back to
    HIGHEST); on an accelerator the 3-pass presets use the tensor cores."""
    self.pair_metrics_against_float64(512, 64, precision, tile_size=100)

  @pytest.mark.slow
  def test_pair_gram_precision_at_4096_classes(self):
    self.pair_metrics_against_float64(4096, 256, jax.lax.DotAlgorithmPreset.BF16_BF16_F32_X3,
                                      tile_size=1024)

  def test_bad_precision_names_the_argument(self):
    h, y, _, _ = self.data()
    s = ncjax.class_stats(jnp.float32(h), y, num_classes=11)
    with self.assertRaisesRegex(ValueError, "precision must be a jax.lax.Precision"):
      ncjax.cdnv(s, precision="float32")

  def test_update_equals_merge_of_a_batch(self):
    h, y, _, _ = self.data(offset=1e3)
    a = ncjax.class_stats(jnp.float32(h[:150]), y[:150], num_classes=11)
    fused = a.update(jnp.float32(h[150:]), y[150:])
    merged = a.merge(ncjax.class_stats(jnp.float32(h[150:]), y[150:], num_classes=11))
    chex.assert_trees_all_close(fused, merged, rtol=1e-5, atol=1e-6)

  def test_bad_inputs(self):
    h, y, head, _ = self.data()
    s = ncjax.class_stats(jnp.float32(h), y, num_classes=11)
    with self.assertRaisesRegex(ValueError, "tile_size must be an int >= 1"):
      ncjax.cdnv(s, tile_size=0)
    with self.assertRaisesRegex(ValueError, "ood features are 5-d, stats 6-d"):
      ncjax.nc5(s, np.ones((4, 5), np.float32))
    with self.assertRaisesRegex(ValueError, "ood contains NaN"):
      ncjax.nc5(s, np.full((4, 6), np.nan, np.float32))
    with self.assertRaisesRegex(TypeError, "stats must be a ClassStats"):
      ncjax.nci_score(h, np.float32(h), head=np.float32(head))
    with self.assertRaisesRegex(ValueError, "NC5 is 0/0"):
      ncjax.nc5(s, s)  # the in-distribution features as their own OOD set


class InvarianceTest(parameterized.TestCase):

  @parameterized.parameters(("full_rank", 12), ("singular", 6))
  def test_vci_invariant_to_invertible_map_nc1_not(self, _, rank):
    h, y, _, _ = dataset(d=12, seed=4)
    rng = np.random.default_rng(5)
    if rank < 12:  # features in a 6-dim subspace: Sigma_T singular
      h = h[:, :rank] @ rng.normal(size=(rank, 12))
    a = rng.normal(size=(12, 12)) + 3 * np.eye(12)
    moved = h @ a.T
    stats = lambda h: ncjax.class_stats(jnp.float32(h), y, num_classes=5)
    np.testing.assert_allclose(ncjax.vci(stats(moved)), ncjax.vci(stats(h)), rtol=1e-3)
    np.testing.assert_allclose(ref.vci(moved, y, 5), ref.vci(h, y, 5), rtol=1e-8)
    self.assertGreater(abs(float(ncjax.nc1(stats(moved))) / float(ncjax.nc1(stats(h))) - 1),
                       0.05)

  def test_translation_and_scale(self):
    h, y, head, bias = dataset(seed=6)
    base = ncjax.collapse_metrics(*f32(h), y, num_classes=5, **heads(head))
    shifted = ncjax.collapse_metrics(*f32(h + 50.0), y, num_classes=5, **heads(head))
    scaled = ncjax.collapse_metrics(*f32(h * 1e3), y, num_classes=5, **heads(head))
    translation_invariant = [k for k in base if k not in ("nc4", "effective_rank")]
    for key in translation_invariant:
      np.testing.assert_allclose(shifted[key], base[key], rtol=1e-3, atol=1e-5, err_msg=key)
    for key in base:  # everything is scale invariant
      np.testing.assert_allclose(scaled[key], base[key], rtol=1e-4, atol=1e-6, err_msg=key)


class ClassStatsTest(parameterized.TestCase):

  def _streamed(self, h, y, c, batches=10, seed=0):
    rng = np.random.default_rng(seed)
    stats = ncjax.ClassStats.empty(num_classes=c, dim=h.shape[1])
    update = jax.jit(ncjax.ClassStats.update)
    for idx in np.array_split(np.arange(len(y)), batches):
      pad = rng.integers(1, 8)  # padded batch: garbage rows masked out
      hb = np.r_[h[idx], np.full((pad, h.shape[1]), 1e30)]
      yb = np.r_[y[idx], np.zeros(pad, int)]
      mask = np.r_[np.ones(len(idx), bool), np.zeros(pad, bool)]
      stats = update(stats, jnp.float32(hb), jnp.asarray(yb), jnp.asarray(mask))
    return stats

  def test_streamed_equals_one_shot(self):
    h, y, head, _ = dataset(n=500, seed=7)
    streamed = ncjax.collapse_metrics_from_stats(self._streamed(h, y, 5), head=jnp.float32(head))
    whole = ncjax.collapse_metrics_from_stats(ncjax.class_stats(jnp.float32(h), y, num_classes=5),
                                              head=jnp.float32(head))
    for key in whole:
      np.testing.assert_allclose(streamed[key], whole[key], rtol=1e-4, atol=1e-6, err_msg=key)

  def test_merge_associative(self):
    h, y, _, _ = dataset(n=90, seed=8)
    a, b, c = (ncjax.class_stats(jnp.float32(h[i::3]), y[i::3], num_classes=5) for i in range(3))
    chex.assert_trees_all_close(a.merge(b).merge(c), a.merge(b.merge(c)), rtol=1e-5, atol=1e-4)

  @parameterized.parameters(0.0, 1e4)
  def test_blocked_scatter_of_wide_features(self, offset):
    """d = 400: ClassStats.update forms the scatter from the upper triangle of 2 x 2
    blocks of 200 (d not a multiple of the block); masked padding, two absent classes."""
    h, y, _, _ = dataset(n=900, d=400, c=7, seed=10)
    y = np.where(y >= 5, 0, y)  # classes 5 and 6 absent
    want = ref.class_moments(h, y, 7)
    stats = self._streamed(h + offset, y, 7)
    tol = dict(rtol=1e-4, atol=1e-4) if offset == 0 else dict(rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(stats.sigma_w, want["sigma_w"], **tol)
    np.testing.assert_array_equal(stats.scaled_within, stats.scaled_within.T)
    np.testing.assert_allclose(stats.means[:5] - offset, want["means"], rtol=1e-4, atol=2e-3)
    np.testing.assert_array_equal(stats.counts[5:], 0)
    text = jax.jit(ncjax.ClassStats.update).lower(
        ncjax.ClassStats.empty(num_classes=7, dim=400), jnp.ones((8, 400)),
        jnp.zeros(8, int)).as_text()
    products = re.findall(r"dot_general.*-> tensor<(\d+x\d+)xf32>", text)
    self.assertCountEqual(products, ["200x400", "200x200"])  # the triangle's block rows

  def test_offset_1e4_keeps_within_scatter(self):
    h, y, _, _ = dataset(n=2000, d=16, seed=9, spread=1.0)
    want = ref.class_moments(h, y, 5)["sigma_w"]
    stats = self._streamed(h + 1e4, y, 5)
    np.testing.assert_allclose(stats.sigma_w, want, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h, y, 5), rtol=1e-3)
    np.testing.assert_allclose(ncjax.vci(stats), ref.vci(h, y, 5), rtol=1e-3)


class TransformTest(chex.TestCase):

  def test_compiles_once(self):
    fn = jax.jit(chex.assert_max_traces(ncjax.collapse_metrics, n=1),
                 static_argnames="num_classes")
    chex.clear_trace_counter()
    for seed in range(4):
      h, y, head, bias = dataset(seed=seed)
      fn(*f32(h), y, num_classes=5, **heads(head, bias))

  @pytest.mark.slow
  def test_vmap_over_seeds(self):
    data = [dataset(seed=s) for s in range(3)]
    h, y, head, bias = (np.stack(x) for x in zip(*data, strict=True))
    fn = jax.vmap(lambda *a: ncjax.collapse_metrics(a[0], a[1], num_classes=5, head=a[2], bias=a[3]))
    batched = fn(*f32(h), jnp.asarray(y), *f32(head, bias))
    for i, d in enumerate(data):
      single = ncjax.collapse_metrics(*f32(d[0]), d[1], num_classes=5, **heads(*d[2:]))
      for key in single:
        np.testing.assert_allclose(batched[key][i], single[key], rtol=1e-4, atol=1e-6)

  @pytest.mark.slow
  def test_grad_finite(self):
    h, y, head, _ = dataset(seed=10)
    for name in STATS_METRICS + ("effective_rank",):
      fn = getattr(ncjax, name)
      loss = fn if name == "effective_rank" else (lambda z, fn=fn: fn(ncjax.class_stats(z, y, num_classes=5)))
      grad = jax.grad(loss)(jnp.float32(h))
      self.assertTrue(bool(jnp.all(jnp.isfinite(grad))), name)


class BadInputTest(parameterized.TestCase):
  h, y, head, bias = dataset(n=40)

  @parameterized.named_parameters(
      ("labels_range", dict(y=np.r_[dataset(n=40)[1][:-1], 5]), r"labels must lie in \[0, 5\)"),
      ("labels_float", dict(y=dataset(n=40)[1] * 1.0), "labels must be integers"),
      ("labels_length", dict(y=dataset(n=40)[1][:30]), r"labels must have shape \(40,\)"),
      ("features_rank", dict(h=np.ones(40, np.float32)), "features must be 2-D"),
      ("features_nan", dict(h=np.where(np.eye(40, 12), np.nan, dataset(n=40)[0])),
       "features contains NaN"),
      ("one_class", dict(y=np.zeros(40, int)), "1 class"),
      ("head_shape", dict(head=np.ones((4, 12))), r"head must have shape \(5, 12\)"),
  )
  def test_eager_errors(self, override, message):
    kw = dict(h=self.h, y=self.y, head=self.head) | override
    with self.assertRaisesRegex(ValueError, message):
      ncjax.collapse_metrics(kw["h"], kw["y"], num_classes=5, head=kw["head"])

  def test_vci_of_equal_means(self):
    h = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    h = np.r_[h, -h]  # both classes have mean 0
    y = np.arange(80) % 2
    stats = ncjax.class_stats(h, y, num_classes=2)
    with self.assertRaisesRegex(ValueError, "all class means are equal"):
      ncjax.vci(stats)
    self.assertTrue(np.isnan(jax.jit(ncjax.vci)(stats)))


def offset_data(offset, spread, n=600, c=5, d=20, seed=0):
  """The issue's case: C = 5 classes in d = 20, means 2 apart, float32 at an offset."""
  rng = np.random.default_rng(seed)
  y = np.arange(n) % c
  means = 2 / np.sqrt(2 * d) * rng.normal(size=(c, d))
  return (means[y] + spread * rng.normal(size=(n, d)) + offset).astype(np.float32), y


def streamed(h, y, c, batches=6):
  stats = ncjax.ClassStats.empty(num_classes=c, dim=h.shape[1])
  for idx in np.array_split(np.arange(len(y)), batches):
    stats = stats.update(h[idx], y[idx])
  return stats


class OffsetTest(parameterized.TestCase):
  """Float32 features far from the origin, against float64 on the same float32 inputs."""

  @parameterized.product(offset=(0.0, 1e3, 1e4, 1e5), spread=(1.0, 1e-6))
  def test_nc1_cdnv_vci_streamed_and_one_shot(self, offset, spread):
    h, y = offset_data(offset, spread)
    stats = {"streamed": streamed(h, y, 5), "one-shot": ncjax.class_stats(h, y, num_classes=5)}
    for route, s in stats.items():
      for name in STATS_METRICS:
        # Near collapse the values are ~1e-11 (float32 input quantisation); VCI is then
        # accurate to d eps absolute.
        atol = 4e-7 if name == "vci" else 1e-12
        np.testing.assert_allclose(getattr(ncjax, name)(s), getattr(ref, name)(h, y, 5),
                                   rtol=1e-3, atol=atol, err_msg=f"{name} {route}")

  def test_merge_of_batches_at_different_offsets(self):
    """Frames differ (shift and scale): the union still equals the float64 reference."""
    h, y = offset_data(0.0, 1.0)
    h = h.copy()
    h[300:] *= 1e3
    h[300:] += 5e4
    a = ncjax.class_stats(h[:300], y[:300], num_classes=5)
    b = ncjax.class_stats(h[300:], y[300:], num_classes=5)
    for name in STATS_METRICS:
      np.testing.assert_allclose(getattr(ncjax, name)(a.merge(b)), getattr(ref, name)(h, y, 5),
                                 rtol=1e-3, err_msg=name)
    np.testing.assert_allclose(a.merge(b).means, ref.class_moments(h, y, 5)["means"], rtol=1e-6)

  @parameterized.parameters(1e30, 1e-30)
  def test_extreme_scales_equal_scale_one(self, scale):
    h, y, head, bias = dataset(seed=11)
    base = ncjax.collapse_metrics(*f32(h), y, num_classes=5, **heads(head, bias))
    big = ncjax.collapse_metrics(*f32(h * scale), y, num_classes=5,
                                 **heads(head, bias * scale))  # logits scale with h
    for key in base:
      np.testing.assert_allclose(big[key], base[key], rtol=1e-4, atol=1e-6, err_msg=key)


@hypothesis.settings(max_examples=10, deadline=None, derandomize=True)
@hypothesis.given(
    counts=st.lists(st.integers(0, 12), min_size=2, max_size=6),
    dim=st.integers(2, 12),
    offset=st.sampled_from([0.0, 1.0, -30.0, 1e2, 1e3, 1e4]),
    log_scale=st.floats(-3, 3),
    seed=st.integers(0, 2**16),
)
@pytest.mark.slow
def test_property_float32_matches_float64(counts, dim, offset, log_scale, seed):
  """Random class counts (absent and one-sample classes), dimensions, offsets up to 1e4
  and scales 1e-3..1e3: float32 metrics equal the float64 references on the same inputs
  (NC1, CDNV, NC2 rtol 2e-3; VCI rtol 2e-3 or eps cond(Sigma_T) absolute; entropies
  atol 1e-3; MIR and HDR atol 5e-3 where both entropies exceed 0.05 nats), or raise a
  clear error."""
  rng = np.random.default_rng(seed)
  c = len(counts)
  y = np.repeat(np.arange(c), counts)
  means = 3 * rng.normal(size=(c, dim))
  h = ((means[y] + rng.normal(size=(len(y), dim))) * 10.0**log_scale + offset).astype(np.float32)
  head = rng.normal(size=(c, dim)).astype(np.float32)
  present = sum(k > 0 for k in counts)
  if present < 2:
    with pytest.raises(ValueError, match="class|rows"):
      ncjax.collapse_metrics(h, y, num_classes=c, head=head)
    return
  got = ncjax.collapse_metrics(h, y, num_classes=c, head=head)
  # VCI inverts Sigma_T: float32 can do no better than eps * cond(Sigma_T) absolute
  # (e.g. 9 samples in 8-d: cond 1.4e6, true VCI 0, float32 0.0027).
  w = np.linalg.eigvalsh(np.cov(h.T.astype(np.float64), bias=True))
  w = w[w > ref.RCOND * w[-1]]
  atol = {"vci": np.finfo(np.float32).eps * w[-1] / w[0]}
  for name in STATS_METRICS:
    np.testing.assert_allclose(got[name], getattr(ref, name)(h, y, c), rtol=2e-3,
                               atol=max(atol.get(name, 0.0), 1e-6), err_msg=name)
  for key, value in ref.nc2(h, y, c, head).items():
    np.testing.assert_allclose(got[key], value, rtol=2e-3, atol=2e-4, err_msg=key)
  m = ref.class_moments(h, y, c)["m"]
  w = head[ref.class_moments(h, y, c)["present"]]
  h_w, h_m = ref.matrix_entropy(w), ref.matrix_entropy(m)
  np.testing.assert_allclose(got["entropy_means"], h_m, atol=1e-3)
  np.testing.assert_allclose(got["entropy_head"], h_w, atol=1e-3)
  if min(h_w, h_m) > 0.05:
    np.testing.assert_allclose(got["mir"], ref.mir(w, m), atol=5e-3)
    np.testing.assert_allclose(got["hdr"], ref.hdr(w, m), atol=5e-3)
  assert 0 <= got["mir"] <= 1 and 0 <= got["vci"] <= 1


class StatsInputTest(parameterized.TestCase):
  """Every ClassStats method validates (eagerly; shapes and dtypes under jit too)."""
  h, y, head, bias = dataset(n=40)
  h = np.float32(h)

  @parameterized.named_parameters(
      ("label_out_of_range", dict(y=np.r_[dataset(n=40)[1][:-1], 5]), ValueError,
       r"labels must lie in \[0, 5\)"),
      ("wrong_dim", dict(h=np.ones((40, 3), np.float32)), ValueError, "features must have 12"),
      ("complex", dict(h=np.ones((40, 12), np.complex64)), TypeError, "real floating"),
      ("float_mask", dict(mask=np.ones(40, np.float32)), TypeError, "mask must be boolean"),
      ("nan", dict(h=np.full((40, 12), np.nan, np.float32)), ValueError, "features contains"),
  )
  def test_update(self, override, error, message):
    kw = dict(h=self.h, y=self.y, mask=None) | override
    stats = ncjax.ClassStats.empty(num_classes=5, dim=12)
    with self.assertRaisesRegex(error, message):
      stats.update(kw["h"], kw["y"], kw["mask"])

  def test_merge_mismatch(self):
    a = ncjax.ClassStats.empty(num_classes=3, dim=12)
    with self.assertRaisesRegex(ValueError, "cannot merge statistics of 1 classes"):
      a.merge(ncjax.ClassStats.empty(num_classes=1, dim=12))
    with self.assertRaisesRegex(TypeError, "other must be a ClassStats"):
      a.merge(self.h)

  @parameterized.named_parameters(
      ("zero_classes", dict(num_classes=0, dim=3), ValueError, "num_classes must be an int >= 1"),
      ("float_classes", dict(num_classes=2.0, dim=3), ValueError, "num_classes"),
      ("zero_dim", dict(num_classes=2, dim=0), ValueError, "dim must be an int >= 1"),
      ("int_dtype", dict(num_classes=2, dim=3, dtype=jnp.int32), TypeError, "dtype must be"),
  )
  def test_empty(self, kwargs, error, message):
    with self.assertRaisesRegex(error, message):
      ncjax.ClassStats.empty(**kwargs)

  def test_bias_shape(self):
    with self.assertRaisesRegex(ValueError, r"bias must have shape \(5,\)"):
      ncjax.collapse_metrics(self.h, self.y, num_classes=5, head=np.float32(self.head),
                             bias=np.ones((40, 5), np.float32))

  @parameterized.parameters(0.0, 1.0, 1e-3, 37.5)
  def test_constant_features_raise_eagerly_where_the_metric_is_0_over_0(self, value):
    """A dead layer with a bias: the class means differ only by round-off (1e-7 of the
    value), which must not read as perfect collapse."""
    h, y = np.full((10, 3), value, np.float32), np.arange(10) % 2
    stats = ncjax.class_stats(h, y, num_classes=2)
    for name, fn in (("NC1", ncjax.nc1), ("VCI", ncjax.vci), ("CDNV", ncjax.cdnv),
                     ("NC3", lambda s: ncjax.nc3(s, head=np.eye(2, 3, dtype=np.float32))),
                     ("collapse_metrics", ncjax.collapse_metrics_from_stats)):
      with self.assertRaisesRegex(ValueError, f"{name} is 0/0: all class means are equal"):
        fn(stats)
    self.assertTrue(np.isnan(jax.jit(ncjax.nc1)(stats)))
    self.assertTrue(np.isnan(jax.jit(ncjax.vci)(stats)))

  def test_constant_features_of_many_classes_in_many_dimensions(self):
    h = np.full((600, 64), 3.1, np.float32)
    h[:, 5] = 0.7  # any constant row, not only one repeated value
    with self.assertRaisesRegex(ValueError, "all class means are equal"):
      ncjax.nc1(ncjax.class_stats(h, np.arange(600) % 50, num_classes=50))

  def test_vci_near_collapse_is_in_unit_interval(self):
    h, y = offset_data(0.0, 1e-6)
    self.assertTrue(0.0 <= float(ncjax.vci(ncjax.class_stats(h, y, num_classes=5))) <= 4e-7)


def dependent_means(d, c, n, seed=0, offset=3.0):
  """Random class means with C close to d (nearly dependent), unit within-class noise, at
  an offset: the regime of a 1k-class head on 1k-wide features (issue: NC1 34% low)."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, c, n)
  h = (rng.normal(size=(c, d))[y] + rng.normal(size=(n, d)) + offset).astype(np.float32)
  return h, y


class NearlyDependentMeansTest(parameterized.TestCase):
  """NC1 and VCI from the means' own SVD (not their Gram) agree with float64 where the
  Gram route lost the small singular values (NC1 50% low at d = 256, C = 250)."""

  @parameterized.parameters((256, 250, 16384), (64, 64, 4096), (64, 70, 4096))
  def test_float32_matches_float64(self, d, c, n):
    h, y = dependent_means(d, c, n)
    stats = ncjax.class_stats(h, y, num_classes=c)
    h64 = h.astype(np.float64)
    np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h64, y, c), rtol=1e-3)
    np.testing.assert_allclose(ncjax.vci(stats), ref.vci(h64, y, c), atol=1e-3)

  @pytest.mark.slow
  def test_means_near_a_low_dimensional_subspace_and_unequal_classes(self):
    rng = np.random.default_rng(1)
    d, c, n = 128, 120, 8192
    y = rng.choice(c, n, p=rng.dirichlet(np.full(c, 0.5)))
    means = rng.normal(size=(c, 4)) @ rng.normal(size=(4, d)) + 0.05 * rng.normal(size=(c, d))
    h = (means[y] + rng.normal(size=(n, d)) + 3.0).astype(np.float32)
    stats = ncjax.class_stats(h, y, num_classes=c)
    h64 = h.astype(np.float64)
    np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h64, y, c), rtol=1e-3)
    np.testing.assert_allclose(ncjax.vci(stats), ref.vci(h64, y, c), atol=1e-3)

  @pytest.mark.slow
  def test_full_size_case(self):
    """d = 1,024, C = 1,000, N = 2^17, offset 3: NC1 6.665 vs 10.124 before."""
    h, y = dependent_means(1024, 1000, 1 << 17)
    stats = ncjax.class_stats(h, y, num_classes=1000)
    h64 = h.astype(np.float64)
    np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h64, y, 1000), rtol=1e-3)
    np.testing.assert_allclose(ncjax.vci(stats), ref.vci(h64, y, 1000), atol=1e-3)

  def test_warns_when_the_means_are_too_close_to_dependent_for_float32(self):
    rng = np.random.default_rng(2)
    d, c = 16, 6
    means = rng.normal(size=(c, d))
    means[-1] = means[:-1].mean(0) + 1e-5 * rng.normal(size=d)  # almost in the others' span
    y = np.repeat(np.arange(c), 40)
    h = (means[y] + 1e-8 * rng.normal(size=(len(y), d))).astype(np.float32)
    stats = ncjax.class_stats(h, y, num_classes=c)
    with pytest.warns(ncjax.ConditioningWarning, match="NC1 may be inaccurate.*condition"):
      ncjax.nc1(stats)

  def test_no_warning_on_well_posed_means(self):
    h, y, _, _ = dataset()
    with warnings.catch_warnings():
      warnings.simplefilter("error", ncjax.ConditioningWarning)
      ncjax.collapse_metrics_from_stats(ncjax.class_stats(jnp.float32(h), y, num_classes=5))

  @pytest.mark.slow
  def test_grad_of_nc1_finite_at_the_simplex_etf(self):
    """Repeated singular values (the ETF) break eigenvector derivatives; the
    pseudo-inverse's derivative has no gaps."""
    h, y, _ = etf_configuration(c=5, d=8)
    grad = jax.grad(lambda z: ncjax.nc1(ncjax.class_stats(z, y, num_classes=5)))(jnp.float32(h))
    self.assertTrue(bool(jnp.all(jnp.isfinite(grad))))
    self.assertGreater(float(jnp.max(jnp.abs(grad))), 0.0)

  @pytest.mark.slow
  def test_grad_of_nc1_matches_finite_differences_in_float64(self):
    h, y, _, _ = dataset(n=60, d=6, c=4)
    with jax.enable_x64(True):
      f = lambda z: ncjax.nc1(ncjax.class_stats(z, y, num_classes=4))
      z = jnp.asarray(h, jnp.float64)
      direction = jnp.asarray(np.random.default_rng(3).normal(size=h.shape))
      analytic = jnp.vdot(jax.grad(f)(z), direction)
      numeric = (f(z + 1e-6 * direction) - f(z - 1e-6 * direction)) / 2e-6
      np.testing.assert_allclose(analytic, numeric, rtol=1e-6)
