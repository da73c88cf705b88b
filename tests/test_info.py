"""Information metrics against float64 references and closed forms."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import ncjax
from tests import reference as ref
from tests.reference import features

RTOL = 1e-4


KINDS = ("random", "low_rank", "collapsed")
# (n, d): covariance route (d < n) and Gram route (d >= n).
SHAPES = ((96, 12), (10, 40))


class ReferenceTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(kind=KINDS, shape=SHAPES)
  def test_matrix_entropy(self, kind, shape):
    z = features(kind, *shape)
    got = self.variant(ncjax.matrix_entropy)(jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose(got, ref.matrix_entropy(z), rtol=RTOL)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(kind=KINDS, shape=((200, 8, 5), (12, 6, 5)))
  def test_pair_metrics(self, kind, shape):
    n, d1, d2 = shape  # d1*d2 < n takes the Kronecker route, else the Hadamard Gram.
    z1 = features(kind, n, d1, seed=1)
    z2 = z1[:, :d2] + 0.5 * features("random", n, d2, seed=2)
    for name in ("joint_entropy", "mutual_information", "mir", "hdr"):
      got = self.variant(getattr(ncjax, name))(jnp.float32(z1), jnp.float32(z2))
      np.testing.assert_allclose(got, getattr(ref, name)(z1, z2), rtol=RTOL, atol=1e-5,
                                 err_msg=name)

  @chex.variants(with_jit=True, without_jit=True)
  def test_gram_entropy(self):
    z = features("low_rank", 30, 10)
    k = ref.cosine_gram(z)
    got = self.variant(ncjax.gram_entropy)(jnp.float32(k))
    np.testing.assert_allclose(got, ref.kernel_entropy(k), rtol=RTOL)

  @chex.variants(with_jit=True, without_jit=True)
  def test_mask_drops_padded_rows(self):
    z1, z2 = features("random", 40, 6), features("low_rank", 40, 4, seed=3)
    pad = np.random.default_rng(4).normal(size=(9, 6)) * 100
    mask = np.r_[np.ones(40, bool), np.zeros(9, bool)]
    p1 = jnp.float32(np.r_[z1, pad])
    p2 = jnp.float32(np.r_[z2, pad[:, :4]])
    mir = self.variant(ncjax.mir)
    np.testing.assert_allclose(mir(p1, p2, mask=jnp.asarray(mask)), ref.mir(z1, z2), rtol=RTOL)
    ent = self.variant(ncjax.matrix_entropy, static_argnames="normalized")
    np.testing.assert_allclose(ent(p1, mask=jnp.asarray(mask), normalized=True),
                               ref.matrix_entropy(z1) / np.log(40), rtol=RTOL)


class LabelEntropiesTest(chex.TestCase):
  """H(G(rows[labels])) from the weighted C x C Gram equals the n x n route."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((7, 5), (7, 40))  # C x C route (C < d2) and d2 x d2 route
  def test_equals_the_repeated_rows(self, c, d2):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, c, 120)
    labels[labels == 3] = 4  # class 3 absent: its row may be anything, even zero
    rows = rng.normal(size=(c, d2))
    rows[3] = 0.0
    z = rng.normal(size=(120, 9))
    mask = rng.random(120) < 0.8
    fn = self.variant(ncjax.label_entropies)
    got = fn(jnp.float32(z), jnp.float32(rows), jnp.asarray(labels), mask=jnp.asarray(mask))
    kept = labels[mask]
    want = (ref.matrix_entropy(z[mask]), ref.matrix_entropy(rows[kept]),
            ref.joint_entropy(z[mask], rows[kept]))
    np.testing.assert_allclose(got, want, rtol=1e-4)

  def test_bad_labels(self):
    with self.assertRaisesRegex(ValueError, r"labels must lie in \[0, 3\)"):
      ncjax.label_entropies(np.ones((4, 2), np.float32), np.eye(3, dtype=np.float32),
                            np.array([0, 1, 2, 3]))


class ClosedFormTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(2, 7, 16)
  def test_orthonormal_rows_give_log_n(self, n):
    q, _ = np.linalg.qr(np.random.default_rng(n).normal(size=(32, n)))
    z = jnp.float32(q.T * np.arange(1, n + 1)[:, None])  # any row scale
    np.testing.assert_allclose(self.variant(ncjax.matrix_entropy)(z), np.log(n), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(3, 10, 50)
  def test_simplex_etf(self, c):
    """G = (C I - J)/(C-1): eigenvalue C/(C-1) (x C-1) and 0, so H = log(C-1).

    G o G = a I + b J with b = 1/(C-1)^2, a = 1 - b: spectrum (a + C b) once and a
    (C-1 times), trace C, so H(G o G) is explicit and MIR = (2 log(C-1) - H(GoG)) / log(C-1).
    """
    m = jnp.float32(ref.simplex_etf(c, c + 3))
    b = 1.0 / (c - 1) ** 2
    p = np.array([1 - b + c * b] + [1 - b] * (c - 1)) / c
    h_joint = -(p * np.log(p)).sum()
    self.assertAlmostEqual(float(self.variant(ncjax.matrix_entropy)(m)), np.log(c - 1), places=4)
    np.testing.assert_allclose(self.variant(ncjax.mir)(m, m),
                               (2 * np.log(c - 1) - h_joint) / np.log(c - 1), rtol=RTOL)
    self.assertAlmostEqual(float(self.variant(ncjax.hdr)(m, m)), 0.0, places=6)

  def test_parallel_rows_give_zero(self):
    z = jnp.outer(jnp.arange(1.0, 6.0), jnp.array([1.0, -2.0, 0.5]))
    self.assertAlmostEqual(float(ncjax.matrix_entropy(z)), 0.0, places=5)

  def test_invariant_to_rotation_and_row_scale(self):
    rng = np.random.default_rng(0)
    z1, z2 = features("low_rank", 50, 6), features("random", 50, 4)
    rot, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    scale = rng.uniform(0.1, 10, size=(50, 1))
    for name in ("matrix_entropy", "mir", "hdr", "mutual_information"):
      fn = getattr(ncjax, name)
      args = (jnp.float32(z1),) if name == "matrix_entropy" else (jnp.float32(z1), jnp.float32(z2))
      moved = (jnp.float32(scale * z1 @ rot),) + args[1:]
      np.testing.assert_allclose(fn(*moved), fn(*args), rtol=1e-4, err_msg=name)

  @pytest.mark.slow
  def test_mir_symmetric_and_ratios_in_unit_interval(self):
    for seed in range(10):
      kind = KINDS[seed % 3]
      z1, z2 = features(kind, 60, 5, seed), features("random", 60, 3, seed + 100)
      a, b = jnp.float32(z1), jnp.float32(z2)
      np.testing.assert_allclose(ncjax.mir(a, b), ncjax.mir(b, a), rtol=1e-4, atol=1e-6)
      for value in (ncjax.mir(a, b), ncjax.hdr(a, b),
                    ncjax.matrix_entropy(a, normalized=True)):
        self.assertBetween(float(value), -1e-6, 1 + 1e-6)


class TransformTest(chex.TestCase):

  def test_compiles_once(self):
    fn = jax.jit(chex.assert_max_traces(ncjax.mir, n=1))
    chex.clear_trace_counter()
    for seed in range(5):
      z = jnp.float32(features("random", 32, 4, seed))
      fn(z, z[:, :2] ** 2)

  @pytest.mark.slow
  def test_vmap_matches_loop(self):
    zs = jnp.float32(np.stack([features(k, 40, 5, s) for s, k in enumerate(KINDS)]))
    ws = jnp.float32(np.stack([features("random", 40, 3, s) for s in range(3)]))
    batched = jax.vmap(ncjax.mir)(zs, ws)
    np.testing.assert_allclose(batched, [ncjax.mir(z, w) for z, w in zip(zs, ws, strict=True)], rtol=1e-5)

  @parameterized.parameters(
      ("orthonormal", np.eye(6, 8)),  # all eigenvalues equal
      ("etf", ref.simplex_etf(6, 8)),  # repeated eigenvalue and an exact zero
      ("duplicated", np.r_[np.eye(3, 8), np.eye(3, 8)]),  # rank-deficient Gram
  )
  @pytest.mark.slow
  def test_grad_finite_at_repeated_eigenvalues(self, _, z):
    z = jnp.float32(z)
    for name in ("matrix_entropy", "joint_entropy", "mutual_information", "mir"):
      fn = getattr(ncjax, name)
      grad = jax.grad(fn if name == "matrix_entropy" else lambda a, fn=fn: fn(a, a[:, ::-1] + a))(z)
      self.assertTrue(bool(jnp.all(jnp.isfinite(grad))), name)

  @pytest.mark.slow
  def test_grad_matches_finite_differences(self):
    with jax.enable_x64(True):
      z1 = jnp.asarray(features("random", 20, 4))
      z2 = jnp.asarray(features("low_rank", 20, 3, seed=5))
      jax.test_util.check_grads(lambda a: ncjax.mutual_information(a, z2), (z1,), order=1,
                                modes=("rev",), atol=1e-5, rtol=1e-5)
      jax.test_util.check_grads(ncjax.matrix_entropy, (z1,), order=1, modes=("rev",),
                                atol=1e-5, rtol=1e-5)

  def test_float64_when_enabled(self):
    with jax.enable_x64(True):
      z = features("collapsed", 50, 6)
      got = ncjax.matrix_entropy(jnp.asarray(z))
      self.assertEqual(got.dtype, jnp.float64)
      np.testing.assert_allclose(got, ref.matrix_entropy(z), rtol=1e-10)

  @pytest.mark.slow
  def test_masked_grad_is_finite_and_zero_on_padding(self):
    z = jnp.float32(np.r_[features("random", 10, 4), np.zeros((3, 4))])
    mask = jnp.arange(13) < 10
    grad = jax.grad(lambda a: ncjax.matrix_entropy(a, mask=mask))(z)
    self.assertTrue(bool(jnp.all(jnp.isfinite(grad))))
    np.testing.assert_array_equal(grad[10:], 0.0)


class BadInputTest(parameterized.TestCase):
  good = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)

  @parameterized.named_parameters(
      ("rank", dict(z1=good[0]), "z1 must be 2-D"),
      ("rows_mismatch", dict(z1=good, z2=good[:5]), "same number of rows"),
      ("one_row", dict(z1=good[:1], z2=good[:1]), "at least 2 rows"),
      ("nan", dict(z1=np.where(np.eye(8, 3), np.nan, good)), "z1 contains NaN"),
      ("inf", dict(z2=np.full((8, 3), np.inf, np.float32)), "z2 contains NaN or Inf"),
      ("zero_row", dict(z2=np.r_[good[:7], np.zeros((1, 3), np.float32)]), "z2 has all-zero rows"),
      ("mask_one_row", dict(mask=np.arange(8) == 3), "mask keeps 1 rows"),
      ("mask_shape", dict(mask=np.ones(7, bool)), r"mask must have shape \(8,\)"),
      ("mask_dtype", dict(mask=np.ones(8)), "mask must be boolean"),
  )
  def test_eager_errors_name_the_argument(self, override, message):
    kwargs = dict(z1=self.good, z2=self.good, mask=None) | override
    with self.assertRaisesRegex(ValueError, message):
      ncjax.mir(kwargs.pop("z1"), kwargs.pop("z2"), **kwargs)

  def test_shape_errors_raise_under_jit(self):
    with self.assertRaisesRegex(ValueError, "z must be 2-D"):
      jax.jit(ncjax.matrix_entropy)(jnp.ones((2, 3, 4)))
    with self.assertRaisesRegex(ValueError, "same number of rows"):
      jax.jit(ncjax.hdr)(jnp.ones((4, 3)), jnp.ones((5, 3)))

  def test_zero_row_under_jit_is_checkifiable(self):
    from jax.experimental import checkify
    z = jnp.asarray(np.r_[self.good[:7], np.zeros((1, 3), np.float32)])
    self.assertTrue(np.isnan(jax.jit(ncjax.matrix_entropy)(z)))
    err, _ = checkify.checkify(jax.jit(ncjax.matrix_entropy), errors=checkify.float_checks)(z)
    with self.assertRaises(checkify.JaxRuntimeError):
      err.throw()

  def test_non_square_kernel(self):
    with self.assertRaisesRegex(ValueError, "k must be square"):
      ncjax.gram_entropy(np.ones((3, 4)))

  @parameterized.named_parameters(
      ("complex", dict(z1=good.astype(np.complex64)), "z1 must be real floating"),
      ("int", dict(z2=np.ones((8, 3), np.int32)), "z2 must be real floating"),
      ("int_mask", dict(mask=np.ones(8, np.int32)), "mask must be boolean"),
      ("float_mask", dict(mask=np.ones(8, np.float32)), "mask must be boolean"),
  )
  def test_dtype_errors_are_type_errors(self, override, message):
    kwargs = dict(z1=self.good, z2=self.good, mask=None) | override
    for fn in (ncjax.mir, jax.jit(ncjax.mir)):  # dtypes are static: checked under jit too
      with self.assertRaisesRegex(TypeError, message):
        fn(kwargs["z1"], kwargs["z2"], mask=kwargs["mask"])

  def test_not_an_array(self):
    with self.assertRaisesRegex(TypeError, "z1 must be an array, got str"):
      ncjax.mir("features", self.good)

  def test_half_precision_is_upcast(self):
    z = jnp.asarray(self.good)
    for dtype in (jnp.float16, jnp.bfloat16):
      got = ncjax.matrix_entropy(z.astype(dtype))
      self.assertEqual(got.dtype, jnp.float32)
      np.testing.assert_allclose(got, ncjax.matrix_entropy(z.astype(dtype).astype(jnp.float32)))

  @parameterized.named_parameters(
      ("not_symmetric", np.triu(np.ones((4, 4))), "k must be symmetric"),
      ("negative_definite", -np.eye(4), "k must be positive semi-definite"),
      ("indefinite", np.diag([1.0, 1.0, -0.5, 0.0]), "k must be positive semi-definite"),
  )
  def test_gram_entropy_rejects_non_psd(self, k, message):
    with self.assertRaisesRegex(ValueError, message):
      ncjax.gram_entropy(np.float32(k))


class EdgeCaseTest(parameterized.TestCase):

  @parameterized.parameters(1e30, 1e-30)
  def test_extreme_scales_equal_scale_one(self, scale):
    rng = np.random.default_rng(1)
    z1, z2 = np.float32(rng.normal(size=(50, 6))), np.float32(rng.normal(size=(50, 4)))
    big1, big2 = np.float32(z1 * scale), np.float32(z2 * scale)
    for fn in (ncjax.mir, ncjax.hdr, ncjax.mutual_information):
      np.testing.assert_allclose(fn(big1, big2), fn(z1, z2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ncjax.matrix_entropy(big1), ncjax.matrix_entropy(z1), rtol=1e-6)
    np.testing.assert_allclose(ncjax.cosine_gram(big1), ncjax.cosine_gram(z1), atol=1e-6)

  def test_mir_of_a_rank_one_gram_is_zero(self):
    """Two centred class means are antiparallel: H(G) = 0 and I = 0, so MIR is defined as
    0 (not 0/0) and HDR is 1."""
    rng = np.random.default_rng(2)
    means = np.float32(rng.normal(size=(1, 5)) * np.array([[1.0], [-1.0]]))
    head = np.float32(rng.normal(size=(2, 5)))
    self.assertEqual(float(ncjax.mir(head, means)), 0.0)
    self.assertEqual(float(jax.jit(ncjax.mir)(head, means)), 0.0)
    np.testing.assert_allclose(ncjax.hdr(head, means), 1.0, rtol=1e-6)
    self.assertEqual(float(ncjax.hdr(means, means)), 0.0)

  def test_mir_stays_in_unit_interval_at_offsets(self):
    rng = np.random.default_rng(3)
    for offset in (1e2, 1e4):
      z1 = np.float32(rng.normal(size=(60, 8)) + offset)
      z2 = np.float32(rng.normal(size=(60, 5)) + offset)
      self.assertTrue(0.0 <= float(ncjax.mir(z1, z2)) <= 1.0)
      self.assertTrue(0.0 <= float(ncjax.hdr(z1, z2)) <= 1.0)


class ConditioningTest(parameterized.TestCase):
  """MIR divides round-off by min(h1, h2): with one entropy near 0 (a common offset) the
  float32 value can miss float64 by more than 1e-3, and an eager call says so."""

  def offset_pair(self, offset, n=512, d=16):
    x = np.random.default_rng(0).normal(size=(n, d))
    return np.float32(x + offset), np.float32(x)

  def test_mir_warns_where_float32_misses_float64(self):
    z1, z2 = self.offset_pair(100.0)
    with self.assertWarnsRegex(ncjax.ConditioningWarning, "MIR may be inaccurate"):
      got = float(ncjax.mir(z1, z2))
    want = ref.mir(z1.astype(np.float64), z2.astype(np.float64))
    self.assertGreater(abs(got - want), ncjax.TOLERANCE)  # the warning is not a false alarm

  @parameterized.parameters(0.0, 3.0)
  def test_no_warning_and_within_tolerance_when_well_conditioned(self, offset):
    z1, z2 = self.offset_pair(offset)
    with warnings.catch_warnings():
      warnings.simplefilter("error", ncjax.ConditioningWarning)
      got = (float(ncjax.mir(z1, z2)), float(ncjax.hdr(z1, z2)))
    z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
    np.testing.assert_allclose(got, (ref.mir(z1, z2), ref.hdr(z1, z2)), atol=ncjax.TOLERANCE)

  def test_hdr_warns_when_both_entropies_are_near_zero(self):
    z1, _ = self.offset_pair(100.0)
    z2, _ = self.offset_pair(120.0)
    with self.assertWarnsRegex(ncjax.ConditioningWarning, "HDR may be inaccurate"):
      ncjax.hdr(z1, z2)

  def test_no_warning_under_jit(self):
    z1, z2 = self.offset_pair(100.0)
    with warnings.catch_warnings():
      warnings.simplefilter("error", ncjax.ConditioningWarning)
      jax.jit(ncjax.mir)(z1, z2)

  @pytest.mark.slow
  def test_float64_meets_the_tolerance_where_float32_warns(self):
    z1, z2 = self.offset_pair(100.0)
    with jax.enable_x64(True):
      got = float(ncjax.mir(np.float64(z1), np.float64(z2)))
    np.testing.assert_allclose(got, ref.mir(np.float64(z1), np.float64(z2)), atol=1e-6)
