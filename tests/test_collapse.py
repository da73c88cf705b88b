"""Collapse metrics against float64 references, closed forms and invariances."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
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


class ReferenceTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*STATS_METRICS)
  def test_stats_metric(self, name):
    h, y, _, _ = dataset()
    fn = self.variant(getattr(ncjax, name), static_argnames="num_classes")
    np.testing.assert_allclose(fn(*f32(h), jnp.asarray(y), num_classes=5),
                               getattr(ref, name)(h, y, 5), rtol=1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_collapse_metrics_dict(self):
    h, y, head, bias = dataset(seed=1)
    fn = self.variant(ncjax.collapse_metrics, static_argnames="num_classes")
    got = fn(*f32(h), jnp.asarray(y), 5, *f32(head, bias))
    want = {f"nc/{k}": v for k, v in ref.nc2(h, y, 5, head).items()}
    want |= {f"nc/{k}": getattr(ref, k)(h, y, 5) for k in STATS_METRICS}
    want["nc/nc3"] = ref.nc3(h, y, 5, head)
    want["nc/nc4"] = ref.nc4(h, y, 5, head, bias)
    want["nc/effective_rank"] = ref.effective_rank(h)
    m = ref.class_moments(h, y, 5)["m"]
    want["info/mir"] = ref.mir(head, m)
    want["info/hdr"] = ref.hdr(head, m)
    want["info/entropy_head"] = ref.matrix_entropy(head)
    want["info/entropy_means"] = ref.matrix_entropy(m)
    for key, value in want.items():
      np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-6, err_msg=key)

  def test_absent_class_drops_out(self):
    """C=7 with classes 5 and 6 absent equals C=5 on the same data."""
    h, y, head, bias = dataset(seed=2)
    extra = np.random.default_rng(0).normal(size=(2, 12))
    full = ncjax.collapse_metrics(*f32(h), y, 5, *f32(head, bias))
    padded = ncjax.collapse_metrics(*f32(h), y, 7, *f32(np.r_[head, extra], np.r_[bias, -1e9, -1e9]))
    for key in full:
      np.testing.assert_allclose(padded[key], full[key], rtol=1e-5, atol=1e-6, err_msg=key)
      self.assertTrue(np.isfinite(padded[key]), key)

  def test_mask_equals_dropping_rows(self):
    h, y, head, bias = dataset(seed=3)
    mask = np.random.default_rng(1).random(len(y)) < 0.7
    garbage = np.where(mask[:, None], h, np.nan)
    got = ncjax.collapse_metrics(*f32(garbage), y, 5, *f32(head, bias), mask=jnp.asarray(mask))
    want = ncjax.collapse_metrics(*f32(h[mask]), y[mask], 5, *f32(head, bias))
    for key in want:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


class ClosedFormTest(parameterized.TestCase):

  @parameterized.parameters((5, 8, 3.0, 0.5), (10, 12, 1.0, 0.2), (3, 3, 2.0, 1.5))
  def test_etf_configuration(self, c, d, r, s):
    h, y, m = etf_configuration(c, d, r, s)
    hj, yj = jnp.float32(h), jnp.asarray(y)
    a = r**2 / (c - 1)  # eigenvalue of Sigma_B on the ETF span
    np.testing.assert_allclose(ncjax.nc1(hj, yj, num_classes=c), s**2 * (c - 1) ** 2 / (r**2 * c),
                               rtol=1e-4)
    np.testing.assert_allclose(ncjax.cdnv(hj, yj, num_classes=c), s**2 * d * (c - 1) / (2 * r**2 * c),
                               rtol=1e-4)
    np.testing.assert_allclose(ncjax.vci(hj, yj, num_classes=c), s**2 / (s**2 + a), rtol=1e-4)

  def test_etf_head_vanishing_nc2_nc3_nc4(self):
    h, y, m = etf_configuration(c=6, d=8)
    head = 2.5 * m  # W proportional to M
    mu_g = h.mean(0)
    bias = -head @ mu_g  # equal norms: argmax(W h + b) = nearest class mean
    out = ncjax.collapse_metrics(*f32(h), y, 6, *f32(head, bias))
    for key in ("equinorm_means", "equiangular_means", "maxangle_means", "equinorm_head",
                "equiangular_head", "maxangle_head", "nc3", "nc4"):
      self.assertAlmostEqual(float(out[f"nc/{key}"]), 0.0, places=5, msg=key)
    self.assertAlmostEqual(float(out["info/hdr"]), 0.0, places=5)
    self.assertAlmostEqual(float(out["info/entropy_means"]), np.log(5), places=4)

  def test_vci_zero_and_nc1_zero_at_full_collapse(self):
    h, y, _ = etf_configuration(s=0.0)
    self.assertAlmostEqual(float(ncjax.vci(jnp.float32(h), y, num_classes=5)), 0.0, places=5)
    self.assertAlmostEqual(float(ncjax.nc1(jnp.float32(h), y, num_classes=5)), 0.0, places=6)


class InvarianceTest(parameterized.TestCase):

  @parameterized.parameters(("full_rank", 12), ("singular", 6))
  def test_vci_invariant_to_invertible_map_nc1_not(self, _, rank):
    h, y, _, _ = dataset(d=12, seed=4)
    rng = np.random.default_rng(5)
    if rank < 12:  # features in a 6-dim subspace: Sigma_T singular
      h = h[:, :rank] @ rng.normal(size=(rank, 12))
    a = rng.normal(size=(12, 12)) + 3 * np.eye(12)
    moved = h @ a.T
    kw = dict(num_classes=5)
    np.testing.assert_allclose(ncjax.vci(jnp.float32(moved), y, **kw),
                               ncjax.vci(jnp.float32(h), y, **kw), rtol=1e-3)
    np.testing.assert_allclose(ref.vci(moved, y, 5), ref.vci(h, y, 5), rtol=1e-8)
    self.assertGreater(abs(float(ncjax.nc1(jnp.float32(moved), y, **kw)) /
                           float(ncjax.nc1(jnp.float32(h), y, **kw)) - 1), 0.05)

  def test_translation_and_scale(self):
    h, y, head, bias = dataset(seed=6)
    base = ncjax.collapse_metrics(*f32(h), y, 5, *f32(head))
    shifted = ncjax.collapse_metrics(*f32(h + 50.0), y, 5, *f32(head))
    scaled = ncjax.collapse_metrics(*f32(h * 1e3), y, 5, *f32(head))
    translation_invariant = [k for k in base if k not in ("nc/nc4", "nc/effective_rank")]
    for key in translation_invariant:
      np.testing.assert_allclose(shifted[key], base[key], rtol=1e-3, atol=1e-5, err_msg=key)
    for key in base:  # everything is scale invariant
      np.testing.assert_allclose(scaled[key], base[key], rtol=1e-4, atol=1e-6, err_msg=key)


class ClassStatsTest(parameterized.TestCase):

  def _streamed(self, h, y, c, batches=10, seed=0):
    rng = np.random.default_rng(seed)
    stats = ncjax.ClassStats.empty(c, h.shape[1])
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
    streamed = ncjax.collapse_metrics_from_stats(self._streamed(h, y, 5), jnp.float32(head))
    whole = ncjax.collapse_metrics_from_stats(ncjax.class_stats(jnp.float32(h), y, 5),
                                              jnp.float32(head))
    for key in whole:
      np.testing.assert_allclose(streamed[key], whole[key], rtol=1e-4, atol=1e-6, err_msg=key)

  def test_merge_associative(self):
    h, y, _, _ = dataset(n=90, seed=8)
    a, b, c = (ncjax.class_stats(jnp.float32(h[i::3]), y[i::3], 5) for i in range(3))
    chex.assert_trees_all_close(a.merge(b).merge(c), a.merge(b.merge(c)), rtol=1e-5, atol=1e-4)

  def test_offset_1e4_keeps_within_scatter(self):
    h, y, _, _ = dataset(n=2000, d=16, seed=9, spread=1.0)
    want = ref.class_moments(h, y, 5)["sigma_w"]
    stats = self._streamed(h + 1e4, y, 5)
    np.testing.assert_allclose(stats.sigma_w, want, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h, y, 5), rtol=1e-3)
    np.testing.assert_allclose(ncjax.vci(stats), ref.vci(h, y, 5), rtol=1e-3)


class TransformTest(chex.TestCase):

  def test_compiles_once(self):
    fn = jax.jit(chex.assert_max_traces(ncjax.collapse_metrics, n=1), static_argnums=2)
    chex.clear_trace_counter()
    for seed in range(4):
      h, y, head, bias = dataset(seed=seed)
      fn(*f32(h), y, 5, *f32(head, bias))

  def test_vmap_over_seeds(self):
    data = [dataset(seed=s) for s in range(3)]
    h, y, head, bias = (np.stack(x) for x in zip(*data))
    fn = jax.vmap(lambda *a: ncjax.collapse_metrics(a[0], a[1], 5, *a[2:]))
    batched = fn(*f32(h), jnp.asarray(y), *f32(head, bias))
    for i, d in enumerate(data):
      single = ncjax.collapse_metrics(*f32(d[0]), d[1], 5, *f32(*d[2:]))
      for key in single:
        np.testing.assert_allclose(batched[key][i], single[key], rtol=1e-4, atol=1e-6)

  def test_grad_finite(self):
    h, y, head, _ = dataset(seed=10)
    for name in STATS_METRICS + ("effective_rank",):
      fn = getattr(ncjax, name)
      loss = (lambda z: fn(z)) if name == "effective_rank" else (lambda z: fn(z, y, num_classes=5))
      grad = jax.grad(loss)(jnp.float32(h))
      self.assertTrue(bool(jnp.all(jnp.isfinite(grad))), name)


class BadInputTest(parameterized.TestCase):
  h, y, head, bias = dataset(n=40)

  @parameterized.named_parameters(
      ("labels_range", dict(y=np.r_[dataset(n=40)[1][:-1], 5]), r"labels must lie in \[0, 5\)"),
      ("labels_float", dict(y=dataset(n=40)[1] * 1.0), "labels must be integers"),
      ("labels_length", dict(y=dataset(n=40)[1][:30]), r"labels must have shape \(40,\)"),
      ("features_rank", dict(h=np.ones(40)), "features must be 2-D"),
      ("features_nan", dict(h=np.where(np.eye(40, 12), np.nan, dataset(n=40)[0])),
       "features contains NaN"),
      ("one_class", dict(y=np.zeros(40, int)), "1 class"),
      ("head_shape", dict(head=np.ones((4, 12))), r"head must have shape \(5, 12\)"),
  )
  def test_eager_errors(self, override, message):
    kw = dict(h=self.h, y=self.y, head=self.head) | override
    with self.assertRaisesRegex(ValueError, message):
      ncjax.collapse_metrics(kw["h"], kw["y"], 5, kw["head"])

  def test_vci_of_equal_means(self):
    h = np.random.default_rng(0).normal(size=(40, 3))
    h = np.r_[h, -h]  # both classes have mean 0
    y = np.arange(80) % 2
    with self.assertRaisesRegex(ValueError, "all class means are equal"):
      ncjax.vci(h, y, num_classes=2)
    self.assertTrue(np.isnan(jax.jit(ncjax.vci, static_argnames="num_classes")(h, y, num_classes=2)))
