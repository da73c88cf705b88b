"""Hostile inputs outside the metric core (issue: silent wrong values): each case gets a
clear error naming the argument, or the right value against a float64 NumPy reference.
Classes: wrong rank and dtype, out-of-range and float labels, int/float/(n, 1) masks,
NaN padding, scales 1e-30 and 1e30, offsets 1e5, traced hyper-parameters, empty inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax import class_stats, collapse, info, losses, ood, optim, progress, spectral
from ncjax.data.algorithmic import algorithmic
from ncjax.stats import ClassStats

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(6, 4)).astype(np.float32)
LABELS = np.array([0, 1, 2, 3, 1, 2])


def _ce_reference(logits, labels, smoothing=0.0, temperature=1.0, mask=None):
  z = np.asarray(logits, np.float64) / temperature
  logp = z - z.max(1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(1, keepdims=True))
  target = (1 - smoothing) * np.eye(z.shape[1])[labels] + smoothing / z.shape[1]
  nll = -(target * logp).sum(1)
  return nll.mean() if mask is None else nll[mask].mean()


@pytest.mark.parametrize("change, match", [
    (dict(labels=np.array([0, 1, 2, 4, 1, 2])), r"labels must lie in \[0, 4\)"),
    (dict(labels=np.array([0, 1, 2, -1, 1, 2])), r"labels must lie in \[0, 4\)"),
    (dict(labels=np.array([0, 1, 2, 2**31 - 1, 1, 2])), r"labels must lie in \[0, 4\)"),
    (dict(labels=LABELS.astype(np.float32)), "labels must be integers"),
    (dict(labels=LABELS[:, None]), r"labels must have shape \(6,\)"),
    (dict(labels=LABELS[:1]), r"labels must have shape \(6,\)"),
    (dict(mask=np.ones(6, int)), "mask must be boolean"),
    (dict(mask=np.ones(6, np.float32)), "mask must be boolean"),
    (dict(mask=np.ones((6, 1), bool)), r"mask must have shape \(6,\)"),
    (dict(logits=LOGITS[0]), "logits must be 2-D"),
    (dict(logits=LOGITS[None]), "logits must be 2-D"),
    (dict(logits=LOGITS.astype(np.int32)), "logits must be real floating"),
    (dict(temperature=float("inf")), "temperature must be finite"),
    (dict(temperature=0.0), "temperature must be finite and > 0"),
    (dict(label_smoothing=float("nan")), "label_smoothing must be in"),
    (dict(logits=np.where(np.eye(6, 4, dtype=bool), np.nan, LOGITS)), "logits contains NaN"),
])
def test_cross_entropy_refuses_bad_input_naming_it(change, match):
  kwargs = dict(logits=LOGITS, labels=LABELS) | change
  with pytest.raises(ValueError, match=match):
    losses.cross_entropy(**kwargs)


@pytest.mark.parametrize("smoothing, temperature", [(0.0, 1.0), (0.1, 1.0), (0.2, 3.0)])
def test_cross_entropy_matches_reference_in_float32_for_half_precision(smoothing, temperature):
  for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
    logits = jnp.asarray(LOGITS, dtype)
    got = losses.cross_entropy(logits, LABELS, label_smoothing=smoothing,
                               temperature=temperature)
    assert got.dtype == jnp.float32
    want = _ce_reference(np.asarray(logits.astype(jnp.float32)), LABELS, smoothing, temperature)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_nan_padding_reaches_neither_the_loss_nor_its_gradient():
  mask = np.array([1, 1, 1, 1, 0, 0], bool)
  logits = LOGITS.copy()
  logits[4:] = np.nan
  loss, grad = jax.value_and_grad(lambda l: losses.cross_entropy(l, LABELS, mask=mask))(logits)
  np.testing.assert_allclose(loss, _ce_reference(LOGITS, LABELS, mask=mask), rtol=1e-5)
  assert np.all(np.isfinite(grad)) and np.all(grad[4:] == 0)
  # supervised_loss (what the trainer runs) under jit with a NaN padding row
  feats = RNG.normal(size=(6, 3)).astype(np.float32)
  head = RNG.normal(size=(4, 3)).astype(np.float32)
  g = jax.jit(jax.grad(lambda l: losses.supervised_loss(l, LABELS, feats, head, mask=mask)))(
      logits)
  assert np.all(np.isfinite(g))


def test_cross_entropy_temperature_may_be_traced():
  got = jax.jit(jax.vmap(lambda t: losses.cross_entropy(LOGITS, LABELS, temperature=t)))(
      jnp.asarray([0.5, 2.0]))
  np.testing.assert_allclose(got, [_ce_reference(LOGITS, LABELS, temperature=t)
                                   for t in (0.5, 2.0)], rtol=1e-5)


def _rank_reference(z):
  s = np.linalg.svd(np.asarray(z, np.float64), compute_uv=False)
  p = s[s > 0] / s.sum()
  return np.exp(-(p * np.log(p)).sum())


@pytest.mark.parametrize("name", ["constant", "offset1e4", "offset1e5", "scale1e-30",
                                  "scale1e30", "rank3"])
def test_effective_rank_and_its_collapse_metrics_key_match_float64(name):
  rng = np.random.default_rng(1)
  noise = rng.normal(size=(200, 16))
  z = {"constant": np.ones((200, 16)) * 3.0, "offset1e4": noise + 1e4,
       "offset1e5": noise + 1e5, "scale1e-30": noise * 1e-30, "scale1e30": noise * 1e30,
       "rank3": noise[:, :3] @ rng.normal(size=(3, 16))}[name].astype(np.float32)
  want = _rank_reference(z)  # of the float32 data, in float64
  np.testing.assert_allclose(collapse.effective_rank(z), want, rtol=2e-5)
  labels = np.arange(200) % 4
  if name != "constant":  # equal class means: the collapse metrics refuse (0/0)
    got = collapse.collapse_metrics(z, labels, num_classes=4)["effective_rank"]
    np.testing.assert_allclose(got, want, rtol=2e-5)


@pytest.mark.parametrize("scale", [1e-30, 1e-10, 1.0, 1e10, 1e30])
def test_gram_entropy_and_eigenvalues_are_exact_at_any_scale_with_gradients(scale):
  z = RNG.normal(size=(12, 20))
  k = z @ z.T
  w = np.linalg.eigvalsh(k)
  p = w / w.sum()
  want = -(p * np.log(p)).sum()
  ks = jnp.asarray(k * scale, jnp.float32)
  np.testing.assert_allclose(info.gram_entropy(ks), want, rtol=1e-5)
  np.testing.assert_allclose(spectral.psd_eigvalsh(ks) / scale, w, rtol=1e-4)
  # H(s K) = H(K): the gradient in K is scale-free times 1/s.
  grad = jax.grad(lambda k: info.gram_entropy(k * scale))(jnp.asarray(k, jnp.float32))
  base = jax.grad(info.gram_entropy)(jnp.asarray(k, jnp.float32))
  np.testing.assert_allclose(grad, base, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("d1, d2, rank", [(5, 3, None), (5, 3, 64), (5, 3, 15), (4, 4, 20)])
def test_joint_entropy_slq_is_exact_when_the_deflation_holds_the_kernel(d1, d2, rank):
  z1 = RNG.normal(size=(120, d1)).astype(np.float32)
  z2 = RNG.normal(size=(120, d2)).astype(np.float32)
  value, stderr = info.joint_entropy_slq(z1, z2, key=jax.random.key(0), rank=rank)
  np.testing.assert_allclose(value, info.joint_entropy(z1, z2, method="auto"), rtol=1e-5)
  assert stderr == 0


@pytest.mark.slow
def test_joint_entropy_slq_estimate_is_finite_with_its_error():
  z1 = RNG.normal(size=(300, 40)).astype(np.float32)
  z2 = RNG.normal(size=(300, 20)).astype(np.float32)
  value, stderr = info.joint_entropy_slq(z1, z2, key=jax.random.key(0))
  exact = info.joint_entropy(z1, z2, method="auto")
  assert np.isfinite(value) and stderr > 0 and abs(value - exact) < 4 * stderr + 1e-3 * exact


@pytest.mark.parametrize("args, match", [
    ((np.nan, 1.0, 1.5), "h1 contains NaN"), ((1.0, np.inf, 1.5), "h2 contains NaN"),
    ((-0.5, 1.0, 1.0), "h1 must be >= 0"), ((np.ones(2), 1.0, 1.5), "one shape"),
])
def test_entropy_ratios_refuse_impossible_entropies(args, match):
  with pytest.raises(ValueError, match=match):
    info.mir_from_entropies(*args)
  with pytest.raises(ValueError, match=match):
    info.hdr_from_entropies(*args[:2])


def test_entropy_ratios_propagate_nan_under_jit():
  assert np.isnan(jax.jit(info.mir_from_entropies)(jnp.nan, 1.0, 1.0))
  assert np.isnan(jax.jit(info.hdr_from_entropies)(1.0, jnp.nan))
  np.testing.assert_allclose(info.mir_from_entropies(1.0, 2.0, 2.5), 0.5)


@pytest.mark.parametrize("leaves", [
    {"a": np.full(3, 1.2e30, np.float32), "b": np.full(2, 1.2e30, np.float32)},
    {"a": np.full(4, 300, np.float16)}, {"a": np.array([3.0, 4.0], np.float32)}, {}])
def test_weight_norm_does_not_overflow(leaves):
  want = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in leaves.values()))
  np.testing.assert_allclose(progress.weight_norm(leaves), want, rtol=1e-6)
  if leaves:  # as the trainer calls it: under jit and vmap over members
    stacked = {k: np.stack([v, v]) for k, v in leaves.items()}
    np.testing.assert_allclose(jax.jit(jax.vmap(progress.weight_norm))(stacked), [want] * 2,
                               rtol=1e-6)


def test_collapse_metrics_refuse_zero_rows_and_empty_inputs():
  z = RNG.normal(size=(40, 5)).astype(np.float32)
  y = np.arange(40) % 4
  head = RNG.normal(size=(4, 5)).astype(np.float32)
  head[1] = 0

  def stats_of(features):
    return class_stats(features, y, num_classes=4)

  for call, match in [
      (lambda: collapse.nc2(stats_of(np.ones((40, 5), np.float32))), "NC2 is 0/0"),
      (lambda: collapse.nc2(stats_of(np.zeros((40, 5), np.float32))), "NC2 is 0/0"),
      (lambda: collapse.nc2(stats_of(z), head=head), r"head has all-zero rows at \[1\]"),
      (lambda: collapse.unc3(stats_of(z), head=head), r"head has all-zero rows at \[1\]"),
      (lambda: losses.cma_loss(z, y, head, num_classes=4), "class_embeddings has all-zero"),
      (lambda: collapse.nc4(stats_of(z), z, head=head + 1, mask=np.zeros(40, bool)),
       "mask keeps 0 rows"),
      (lambda: ClassStats.empty(num_classes=3, dim=4).sigma_w, "empty ClassStats"),
      (lambda: ClassStats.empty(num_classes=3, dim=4).sigma_b, "empty ClassStats"),
      (lambda: collapse.nc1(class_stats(z, 0 * y, num_classes=1)), "num_classes must be >= 2"),
  ]:
    with pytest.raises(ValueError, match=match):
      call()


def test_predictions_from_logits_are_checked():
  z = RNG.normal(size=(12, 5)).astype(np.float32)
  y = np.arange(12) % 4
  stats = class_stats(z, y, num_classes=4)
  head = RNG.normal(size=(4, 5)).astype(np.float32)
  logits = z @ head.T
  for call, match in [
      (lambda: collapse.nc4(stats, z), r"head \(C, d\) or logits \(n, C\) is required"),
      (lambda: collapse.nc4(stats, z, head=head, logits=logits), "not both"),
      (lambda: collapse.nc4(stats, z, logits=logits, bias=np.zeros(4, np.float32)),
       "bias must be None when logits"),
      (lambda: collapse.nc4(stats, z, logits=logits[:, :3]),
       r"logits must have shape \(12, 4\)"),
      (lambda: collapse.nc4(stats, z, logits=np.where(np.eye(12, 4) > 0, np.nan, logits)),
       "logits contains NaN"),
      (lambda: collapse.nc4(stats, z, logits=logits.astype(int)), "logits"),
      (lambda: ood.nci_score(stats, z, head=None, logits=logits), "head .C, d. is required"),
  ]:
    with pytest.raises((ValueError, TypeError), match=match):
      call()
  masked = np.where(np.arange(12)[:, None] == 3, np.nan, logits)  # NaN in a masked row
  mask = np.arange(12) != 3
  assert float(collapse.nc4(stats, z, logits=masked, mask=mask)) == float(
      collapse.nc4(stats, z, head=head, mask=mask))


def test_one_row_raises_at_trace_time_under_jit():
  one_row = jax.jit(lambda z, y: collapse.collapse_metrics(z, y, num_classes=3))
  with pytest.raises(ValueError, match="at least 2 rows"):
    one_row(jnp.ones((1, 4)), jnp.zeros(1, int))


def test_valid_input_accepted():
  assert ClassStats.empty(num_classes=3, dim=np.int64(5)).dim == 5
  optim.grokfast_ma(window=np.int64(2))
  empty = ClassStats.empty(num_classes=2, dim=3)
  assert empty.update(np.zeros((0, 3), np.float32), np.zeros(0, int)).total == 0
  params = {"w": jnp.zeros(2)}
  swept = jax.vmap(lambda lamb: optim.grokfast_ema(lamb=lamb).update(
      {"w": jnp.ones(2)}, optim.grokfast_ema(lamb=lamb).init(params))[0]["w"])(
      jnp.asarray([0.0, 1.0]))
  np.testing.assert_allclose(swept, [[1, 1], [2, 2]])
  np.testing.assert_allclose(losses.cross_entropy(LOGITS.tolist(), LABELS.tolist()),
                             _ce_reference(LOGITS, LABELS), rtol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: algorithmic("add", 0, 0.5, 0), "modulus must be an int >= 2"),
    (lambda: algorithmic("add", -5, 0.5, 0), "modulus must be an int >= 2"),
    (lambda: algorithmic("add", 1, 0.5, 0), "modulus must be an int >= 2"),
    (lambda: algorithmic("add", True, 0.5, 0), "modulus must be an int >= 2"),
    (lambda: algorithmic("add", 7.5, 0.5, 0), "modulus must be an int >= 2"),
    (lambda: algorithmic("add", 7, 0.5, None), "seed must be an int"),
    (lambda: optim.grokfast_ema(lamb=float("inf")), "lamb must be finite"),
    (lambda: optim.grokfast_ma(lamb=float("nan")), "lamb must be finite"),
    (lambda: optim.grokfast_ema().update({"w": jnp.ones(1)},
                                         optim.grokfast_ema().init({"w": jnp.zeros(3)})),
     r"gradient has shape \(1,\), its parameter \(3,\)"),
    (lambda: optim.grokfast_ma(window=2).update({"w": jnp.ones(1)},
                                                optim.grokfast_ma(window=2).init(
                                                    {"w": jnp.zeros(3)})),
     r"gradient has shape \(1,\), its parameter \(3,\)"),
])
def test_small_silent_acceptances_now_refused(call, match):
  with pytest.raises(ValueError, match=match):
    call()


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e5])
def test_ood_scores_at_the_global_mean_are_refused_to_round_off(offset):
  z = (RNG.normal(size=(40, 5)) + offset).astype(np.float32)
  y = np.arange(40) % 4
  stats = class_stats(z, y, num_classes=4)
  head = RNG.normal(size=(4, 5)).astype(np.float32)
  mean = np.asarray(stats.global_mean, np.float32)  # the float32 ID mean itself
  with pytest.raises(ValueError, match="NC5 is 0/0"):
    ood.nc5(stats, np.tile(mean, (3, 1)))
  with pytest.raises(ValueError, match=r"nci_score is 0/0 for features rows \[2\]"):
    ood.nci_score(stats, np.vstack([z[:2], mean[None]]), head=head)
  with pytest.raises(ValueError, match="alpha must be finite"):
    ood.nci_score(stats, z[:2], head=head, alpha=float("nan"))
  assert np.all(np.isfinite(ood.nci_score(stats, z[:3], head=head)))  # ordinary rows pass


def test_sample_mesh_refuses_no_devices_and_duplicates():
  from ncjax import sharding

  with pytest.raises(ValueError, match="at least one device"):
    sharding.sample_mesh([])
  with pytest.raises(ValueError, match="distinct"):
    sharding.sample_mesh([jax.devices()[0]] * 2)
  assert sharding.sample_mesh(jax.devices()[:2]).size == 2


def test_magnitude_prune_accepts_empty_kernels():
  from ncjax.analysis.points import magnitude_prune

  params = {"dense": {"kernel": np.zeros((0, 3), np.float32), "bias": np.ones(3, np.float32)}}
  pruned, masks = magnitude_prune(params, [0.0, 0.5])
  assert pruned["dense"]["kernel"].shape == (2, 0, 3)
  np.testing.assert_array_equal(pruned["dense"]["bias"], np.ones((2, 3)))


# --- issue 42 item 2: the last silent and raw cases of the hostile sweep ---


def test_nc3_refuses_a_head_that_is_zero_on_the_classes_present():
  z = RNG.normal(size=(30, 4)).astype(np.float32)
  stats = class_stats(z, np.arange(30) % 3, num_classes=4)  # class 3 absent
  head = np.zeros((4, 4), np.float32)
  head[3] = 1.0  # the absent class's row does not count
  with pytest.raises(ValueError, match="head is all zero .*NC3 is 0/0"):
    collapse.nc3(stats, head=head)


STACK = (lambda a: a @ a.transpose(0, 2, 1))(RNG.normal(size=(3, 4, 4)))


@pytest.mark.parametrize("stack, match", [
    (STACK.astype(np.int32), "stack must be real floating point"),
    (STACK.astype(np.complex64), "stack must be real floating point"),
    (STACK > 0, "stack must be real floating point"),
    (np.where(np.eye(4) > 0, np.nan, STACK).astype(np.float32), "stack contains NaN"),
    (STACK[0].astype(np.float32), r"stack must be \(T, m, m\)"),
])
def test_sharded_eigvalsh_refuses_stacks_that_are_not_finite_real(stack, match):
  from ncjax import sharding

  with pytest.raises(ValueError, match=match):
    sharding.eigvalsh(stack, sharding.sample_mesh(jax.devices()[:2]))


def test_sharded_eigvalsh_solves_bfloat16_in_float32():
  from ncjax import sharding

  stack = jnp.asarray(STACK, jnp.bfloat16)
  got = sharding.eigvalsh(stack, sharding.sample_mesh(jax.devices()[:2]))
  assert got.dtype == jnp.float32
  want = np.linalg.eigvalsh(np.asarray(stack.astype(jnp.float32), np.float64))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("devices, match", [
    ([0, 1], r"devices must be jax.Device objects .*\['int'\]"),
    ("cpu", "devices must be jax.Device objects .*got str"),
    (3, "devices must be jax.Device objects .*got int"),
])
def test_sample_mesh_refuses_what_is_not_a_device(devices, match):
  from ncjax import sharding

  with pytest.raises(ValueError, match=match):
    sharding.sample_mesh(devices)


def test_sample_mesh_accepts_one_device():
  from ncjax import sharding

  assert sharding.sample_mesh(jax.devices()[1]).devices.tolist() == [jax.devices()[1]]


@pytest.mark.parametrize("mesh, match", [
    (lambda: jax.sharding.Mesh(np.asarray(jax.devices()[:2]), ("data",)),
     "mesh must have the one axis 'samples'"),
    (lambda: "samples", "mesh must be a jax.sharding.Mesh .*got str"),
    (lambda: None, "mesh must be a jax.sharding.Mesh .*got NoneType"),
])
def test_row_sharding_refuses_what_is_not_a_sample_mesh(mesh, match):
  from ncjax import sharding

  with pytest.raises(ValueError, match=match):
    sharding.row_sharding(mesh())


def test_psd_entropy_refuses_a_matrix_far_from_symmetric():
  with pytest.raises(ValueError, match="k must be symmetric"):
    spectral.psd_entropy(jnp.array([[1.0, 1.0], [0.0, 1.0]]))


def test_psd_entropy_accepts_round_off_asymmetry_and_uses_the_symmetric_part():
  z = RNG.normal(size=(6, 3))
  k = z @ z.T
  noisy = np.float32(k + 1e-5 * np.abs(k).max() * np.triu(RNG.normal(size=(6, 6)), 1))
  w = np.linalg.eigvalsh((noisy + noisy.T).astype(np.float64) / 2)  # asymmetry < sqrt(eps)
  p = np.clip(w, 0, None) / np.clip(w, 0, None).sum()
  want = -np.sum(p[p > 0] * np.log(p[p > 0]))
  np.testing.assert_allclose(spectral.psd_entropy(noisy), want, rtol=1e-4)


def test_spectrum_entropy_refuses_negative_eigenvalues_beyond_round_off():
  with pytest.raises(ValueError, match="eigenvalues must be >= 0"):
    spectral.spectrum_entropy(jnp.array([[1.0, 1.0], [1.0, -0.5]]))  # one spectrum of two


def test_spectrum_entropy_counts_round_off_negatives_as_zero():
  np.testing.assert_allclose(spectral.spectrum_entropy(jnp.array([1.0, 1.0, -1e-7])),
                             np.log(2), rtol=1e-6)


@pytest.mark.parametrize("k", [1.5, 2.0, np.float32(2), True, "2", jnp.ones(2, int)])
def test_fourier_losses_refuse_a_num_frequencies_that_is_not_an_integer(k):
  p = 5
  with pytest.raises(ValueError, match="num_frequencies must be an integer scalar"):
    progress.fourier_losses(jnp.ones((p * p, p)), jnp.ones(p * p, bool), num_frequencies=k)


def test_fourier_losses_refuse_a_traced_float_num_frequencies_at_trace_time():
  p = 5
  call = jax.jit(lambda k: progress.fourier_losses(jnp.ones((p * p, p)), jnp.ones(p * p, bool),
                                                   num_frequencies=k))
  with pytest.raises(ValueError, match="num_frequencies must be an integer scalar"):
    call(jnp.float32(2))
  assert np.isfinite(call(jnp.int32(2))["restricted_loss"])  # traced ints still sweep


@pytest.mark.parametrize("call, match", [
    (lambda: info.label_entropies("abcd", np.eye(2), np.array([0, 0, 1, 1])),
     "z must be an array, got str"),
    (lambda: progress.weight_norm("abc"), "params must be an array, got str"),
    (lambda: progress.weight_norm({"w": np.ones(2), "name": "abc"}),
     r"params\['name'\] must be an array, got str"),
])
def test_strings_are_refused_naming_the_argument(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# --- issue 39 item 5: jit traps ---

JZ = (np.eye(4)[np.arange(40) % 4] * 3 + RNG.normal(size=(40, 4))).astype(np.float32)
JY = np.arange(40) % 4
JHEAD = RNG.normal(size=(4, 4)).astype(np.float32)  # d == C: a transposed head fits too


def _assert_same_metrics(got, want, rtol=1e-5):
  assert got.keys() == want.keys()
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_jitted_entry_points_take_static_options():
  want = collapse.collapse_metrics(JZ, JY, num_classes=4, head=JHEAD, joint_entropy=False)
  got = collapse.collapse_metrics_jit(JZ, JY, num_classes=4, head=JHEAD, joint_entropy=False)
  _assert_same_metrics(got, want)
  assert "mir" not in got
  stats = class_stats(JZ, JY, num_classes=4)
  _assert_same_metrics(
      collapse.collapse_metrics_from_stats_jit(stats, head=JHEAD, joint_entropy=False, tile_size=2),
      collapse.collapse_metrics_from_stats(stats, head=JHEAD, joint_entropy=False))


def test_a_traced_joint_entropy_flag_is_named():
  recipe = jax.jit(collapse.collapse_metrics, static_argnames="num_classes")  # README before
  with pytest.raises(ValueError, match="joint_entropy must be a Python bool .*static_argnames"):
    recipe(JZ, JY, num_classes=4, head=JHEAD, joint_entropy=False)


@pytest.mark.parametrize("name", ["collapse_metrics", "label_entropies", "cross_entropy"])
def test_labels_of_masked_rows_may_be_anything(name):
  mask = np.arange(40) % 5 != 0
  junk = np.where(mask, JY, np.where(np.arange(40) % 2, -1, 99))
  call = {"collapse_metrics": lambda z, y, m: collapse.collapse_metrics(
              z, y, num_classes=4, head=JHEAD, mask=m),
          "label_entropies": lambda z, y, m: info.label_entropies(z, JHEAD, y, mask=m),
          "cross_entropy": lambda z, y, m: losses.cross_entropy(z, y, mask=m)}[name]
  got, want = call(JZ, junk, mask), call(JZ[mask], JY[mask], None)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_unmasked_out_of_range_labels_are_dropped_under_jit():
  y = JY.copy()
  y[[3, 17]] = [7, -1]
  keep = np.ones(40, bool)
  keep[[3, 17]] = False
  got = collapse.collapse_metrics_jit(JZ, y, num_classes=4, head=JHEAD)
  want = collapse.collapse_metrics(JZ, JY, num_classes=4, head=JHEAD, mask=keep)
  _assert_same_metrics(got, want)


@pytest.mark.parametrize("label, masked, reported", [
    (7, False, True), (7, True, False), *(pytest.param(*case, marks=pytest.mark.slow) for case in (
        (-1, False, True), (-1, True, False), (2, False, False)))])
def test_checkify_index_checks_report_exactly_the_unmasked_out_of_range_labels(
    label, masked, reported):
  from jax.experimental import checkify

  y = JY.copy()
  y[3] = label
  mask = np.arange(40) != 3 if masked else None
  checked = jax.jit(checkify.checkify(
      lambda z, y, m: collapse.collapse_metrics(z, y, num_classes=4, mask=m),
      errors=checkify.index_checks))
  error, _ = checked(JZ, y, mask)
  assert (error.get() is not None) == reported, error.get()
  if reported:
    assert "out-of-bounds" in error.get()


KERNEL_CALLS = {
    "nc2": lambda s, w: collapse.nc2(s, **w),
    "nc3": lambda s, w: collapse.nc3(s, **w),
    "unc3": lambda s, w: collapse.unc3(s, **w),
    "nc4": lambda s, w: collapse.nc4(s, JZ, **w),
    "nci_score": lambda s, w: ood.nci_score(s, JZ + 1, **w),
    "collapse_metrics_from_stats": lambda s, w: collapse.collapse_metrics_from_stats(s, **w),
    "collapse_metrics": lambda s, w: collapse.collapse_metrics(JZ, JY, num_classes=4, **w),
    "collapse_metrics_jit": lambda s, w: collapse.collapse_metrics_jit(JZ, JY, num_classes=4,
                                                                       **w),
}


@pytest.mark.parametrize("name", KERNEL_CALLS)
def test_a_flax_kernel_passed_as_kernel_equals_its_head(name):
  stats, call = class_stats(JZ, JY, num_classes=4), KERNEL_CALLS[name]
  got, want = call(stats, {"kernel": JHEAD.T}), call(stats, {"head": JHEAD})
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-6)


@pytest.mark.parametrize("weights, match", [
    ({"head": JHEAD, "kernel": JHEAD.T}, r"give head \(C, d\) or kernel \(d, C\), not both"),
    ({"kernel": JHEAD[:, :3]}, r"kernel must have shape \(4, 4\) \(d, C: Flax's Dense"),
    ({}, r"head \(C, d\) \(or a Flax kernel \(d, C\) as kernel=\) is required"),
])
def test_head_and_kernel_are_one_or_the_other(weights, match):
  with pytest.raises(ValueError, match=match):
    collapse.nc3(class_stats(JZ, JY, num_classes=4), **weights)
