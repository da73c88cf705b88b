"""Large-n routes: the chunked Kronecker moment, and metrics over an 8-device mesh."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ncjax
from ncjax import sharding
from tests import reference as ref
from tests.reference import features


def structured(n, d=16, rank=4, seed=0):
  """Low-rank features plus noise, as trained networks produce."""
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + 0.1 * rng.normal(size=(n, d))


@pytest.mark.parametrize("same", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_chunked_moment_equals_dense_at_n_2048(same):
  z1 = structured(2048, 8, seed=1)
  z2 = z1 if same else structured(2048, 6, seed=2)
  want = ref.joint_entropy(z1, z2)  # dense 2048 x 2048, float64
  z1_32 = jnp.float32(z1)
  chunked = jax.jit(ncjax.joint_entropy, static_argnames="chunk_size")
  got = chunked(z1_32, z1_32 if same else jnp.float32(z2), chunk_size=100)  # last one padded
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_chunked_moment_with_mask():
  z1, z2 = structured(500, 5, seed=3), structured(500, 4, seed=4)
  mask = np.arange(500) % 7 != 0
  got = ncjax.mutual_information(jnp.float32(z1), jnp.float32(z2), mask=mask, chunk_size=64)
  want = ref.mutual_information(z1[mask], z2[mask])
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_chunked_moment_memory_does_not_grow_with_n():
  """Beyond a few O(n d) copies of the inputs (normalised, padded), nothing grows with n:
  the n x d^2 Kronecker block (800 MB at n = 2e5) is never formed."""
  def temp_bytes(n):
    z1, z2 = (jax.ShapeDtypeStruct((n, 32), jnp.float32) for _ in range(2))
    return jax.jit(ncjax.joint_entropy).lower(z1, z2).compile().memory_analysis()
  small, large = temp_bytes(20_000), temp_bytes(200_000)
  input_bytes = 180_000 * 2 * 32 * 4
  assert large.temp_size_in_bytes - small.temp_size_in_bytes <= 3 * input_bytes


@pytest.mark.slow
def test_symmetric_route_is_used_for_a_gram_with_itself():
  z = jnp.float32(features("random", 3000, 12))
  hlo = jax.jit(lambda z: ncjax.joint_entropy(z, z)).lower(z).as_text()
  assert "78x78" in hlo.replace(",", "x") or "78,78" in hlo  # 12 * 13 / 2 = 78 columns
  np.testing.assert_allclose(ncjax.joint_entropy(z, z), ncjax.joint_entropy(z, z + 0.0),
                             rtol=1e-5)


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8, "tests/conftest.py fakes 8 CPU devices"
  return sharding.sample_mesh()


@pytest.mark.slow
def test_sample_sharded_metrics_equal_single_device(mesh):
  n = 3997  # padded to 4000 and masked
  z1 = np.float32(structured(n, 12, seed=5))
  # Strongly dependent, so MI (a difference of entropies) is not lost in their round-off.
  z2 = z1[:, :5] + 0.3 * np.float32(structured(n, 5, rank=2, seed=6))
  labels = np.arange(n) % 7
  features = np.float32(structured(n, 16, seed=7)) + 3.0 * np.eye(7, 16)[labels]
  (s1, s2, sh, sy), mask = sharding.shard_rows(mesh, z1, z2, features, labels)
  assert s1.sharding.spec[0] == "samples" and s1.shape[0] == 4000
  # 1e-5 relative; the 2e-6 absolute covers differences of ~1 nat entropies (MI, HDR)
  # whose float32 round-off (a few 1e-7) does not shrink with the difference.
  check = lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
  check(ncjax.matrix_entropy(s1, mask=mask, mesh=mesh), ncjax.matrix_entropy(z1))
  for name in ("mutual_information", "mir", "hdr"):
    check(getattr(ncjax, name)(s1, s2, mask=mask, mesh=mesh), getattr(ncjax, name)(z1, z2))
  check(ncjax.entropies(s1, s2, mask=mask, mesh=mesh)[2], ncjax.joint_entropy(z1, z2))
  # The plain metrics take the sharded arrays too (jit partitions them).
  check(jax.jit(ncjax.mir)(s1, s2, mask=mask), ncjax.mir(z1, z2))
  stats = ncjax.class_stats(sh, sy, num_classes=7, mask=mask, mesh=mesh)
  single = ncjax.class_stats(features, labels, num_classes=7)
  check(ncjax.nc1(stats), ncjax.nc1(single))
  check(ncjax.vci(stats), ncjax.vci(single))


@pytest.mark.slow
@pytest.mark.parametrize("tile_size", [4, 64])  # 37 classes: 10 tiles padded to 16; 1 to 8
def test_class_tiles_split_across_devices_equal_single_device(mesh, tile_size):
  rng = np.random.default_rng(3)
  c, d, n = 37, 6, 900
  labels = rng.integers(0, c, n)
  labels[labels == 5] = 6  # class 5 absent
  features = np.float32(3 * rng.normal(size=(c, d))[labels] + rng.normal(size=(n, d)))
  head = np.float32(rng.normal(size=(c, d)))
  stats = ncjax.class_stats(features, labels, num_classes=c)
  fn = jax.jit(lambda s, w, mesh: ncjax.collapse_metrics_from_stats(
      s, head=w, tile_size=tile_size, mesh=mesh), static_argnums=2)
  single, split = fn(stats, head, None), fn(stats, head, mesh)
  for key in ("cdnv", "gnc2", "equiangular_means", "maxangle_means", "equiangular_head",
              "maxangle_head"):
    np.testing.assert_allclose(split[key], single[key], rtol=1e-5, err_msg=key)


def test_class_axis_sharded_equals_single_device_and_no_device_holds_all_means(mesh):
  """Statistics whose class axis is split over 8 devices (128 classes each): the pairwise
  metrics equal the single-device ones, and the compiled program holds no C x d (means
  or head rows) and no C x C array: only (128, d) blocks passed round the ring."""
  rng = np.random.default_rng(5)
  c, d, n = 1024, 96, 3000
  labels = rng.integers(0, c, n)
  labels[labels % 97 == 3] = 4  # some classes absent
  features = np.float32(2 * rng.normal(size=(c, d))[labels] + rng.normal(size=(n, d)))
  head = np.float32(rng.normal(size=(c, d)))
  stats = ncjax.class_stats(features, labels, num_classes=c)
  pairs = jax.jit(lambda s, w, mesh: ncjax.nc2(s, head=w, tile_size=64, mesh=mesh) | {
      "cdnv": ncjax.cdnv(s, tile_size=64, mesh=mesh),
      "gnc2": ncjax.gnc2(s, tile_size=64, mesh=mesh)}, static_argnums=2)
  single = pairs(stats, head, None)
  split_stats = sharding.shard_classes(mesh, stats)
  split_head = jax.device_put(head, sharding.row_sharding(mesh))
  assert split_stats.scaled_means.addressable_shards[0].data.shape == (c // 8, d)
  compiled = pairs.lower(split_stats, split_head, mesh).compile()
  split = compiled(split_stats, split_head)
  assert split.keys() == single.keys()
  for key in single:
    np.testing.assert_allclose(split[key], single[key], rtol=1e-5, err_msg=key)
  hlo, memory = compiled.as_text(), compiled.memory_analysis()  # per device
  assert f"[{c},{d}]" not in hlo and f"[{c},{c}]" not in hlo
  assert f"[{c // 8},{d}]" in hlo
  assert memory.argument_size_in_bytes + memory.temp_size_in_bytes < c * d * 4


def test_shard_classes_needs_whole_blocks(mesh):
  stats = ncjax.class_stats(np.eye(4, dtype=np.float32), np.arange(4), num_classes=4)
  with pytest.raises(ValueError, match="num_classes 4 does not split over the mesh's 8"):
    sharding.shard_classes(mesh, stats)


@pytest.mark.slow
def test_collapse_metrics_of_sharded_stats_on_their_mesh_equal_single_device(mesh):
  """Statistics from ``class_stats(..., mesh=)`` live on the mesh; their pair tiles split
  over the same mesh (raised JAX's "Context mesh ... should match" before)."""
  rng = np.random.default_rng(4)
  c, d, n = 9, 5, 301  # padded to 304 and masked
  labels = rng.integers(0, c, n)
  features = np.float32(3 * rng.normal(size=(c, d))[labels] + rng.normal(size=(n, d)))
  head = np.float32(rng.normal(size=(c, d)))
  (sh, sy), mask = sharding.shard_rows(mesh, features, labels)
  stats = ncjax.class_stats(sh, sy, num_classes=c, mask=mask, mesh=mesh)
  split = ncjax.collapse_metrics_from_stats(stats, head=head, tile_size=2, mesh=mesh)
  single = ncjax.collapse_metrics_from_stats(ncjax.class_stats(features, labels, num_classes=c),
                                             head=head, tile_size=2)
  assert split.keys() == single.keys()
  for key in single:
    np.testing.assert_allclose(split[key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_one_device_mesh_equals_single_device():
  mesh = sharding.sample_mesh(jax.devices()[:1])
  z1, z2 = np.float32(structured(501, 6, seed=8)), np.float32(structured(501, 4, seed=9))
  (s1, s2), mask = sharding.shard_rows(mesh, z1, z2)
  np.testing.assert_allclose(ncjax.mir(s1, s2, mask=mask, mesh=mesh), ncjax.mir(z1, z2),
                             rtol=1e-5)
  np.testing.assert_allclose(sharding.eigvalsh(jnp.eye(3)[None] * 2.0, mesh), [[2.0] * 3])


def test_sharded_metrics_jit_and_compile_once(mesh):
  (s1, s2), mask = sharding.shard_rows(mesh, np.float32(structured(800, 6)),
                                       np.float32(structured(800, 4, seed=1)))
  fn = jax.jit(chex.assert_max_traces(lambda a, b, m: ncjax.mir(a, b, mask=m, mesh=mesh), n=1))
  first = fn(s1, s2, mask)
  for _ in range(3):
    np.testing.assert_allclose(fn(s1, s2, mask), first)


@pytest.mark.slow
def test_snapshot_sharded_eigvalsh(mesh):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 30, 30)).astype(np.float32)
  stack = x @ x.transpose(0, 2, 1)
  got = sharding.eigvalsh(stack, mesh)
  np.testing.assert_allclose(got, ncjax.spectral.psd_eigvalsh(stack), rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(sharding.eigvalsh(stack[:13], mesh), got[:13])  # T = 13: padded


def test_sharded_bad_input_names_the_argument(mesh):
  z = np.float32(structured(64, 4))
  z[3] = 0.0
  (s,), mask = sharding.shard_rows(mesh, z)
  with pytest.raises(ValueError, match="z"):
    ncjax.matrix_entropy(s, mask=mask, mesh=mesh)


def test_sharded_class_stats_keep_offset_accuracy_and_accept_zero_rows(mesh):
  """Each device keeps its moments about its own reference point; psum brings them to one
  frame. Features at 1e4 (float32) still give NC1 and VCI of the float64 reference."""
  rng = np.random.default_rng(3)
  y = np.arange(637) % 5
  h = (rng.normal(size=(5, 20))[y] + rng.normal(size=(637, 20))).astype(np.float32)
  (sh, sy), mask = sharding.shard_rows(mesh, h + np.float32(1e4), y)
  stats = ncjax.class_stats(sh, sy, num_classes=5, mask=mask, mesh=mesh)
  np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h + np.float32(1e4), y, 5), rtol=1e-3)
  np.testing.assert_allclose(ncjax.vci(stats), ref.vci(h + np.float32(1e4), y, 5), rtol=1e-3)
  np.testing.assert_allclose(stats.means, ref.class_moments(h + np.float32(1e4), y, 5)["means"],
                             rtol=1e-6)
  h[:3] = 0.0  # zero rows are ordinary samples for class statistics
  (sh, sy), mask = sharding.shard_rows(mesh, h, y)
  stats = ncjax.class_stats(sh, sy, num_classes=5, mask=mask, mesh=mesh)
  np.testing.assert_allclose(ncjax.nc1(stats), ref.nc1(h, y, 5), rtol=1e-4)


def grokking_features(steps=300):
  """Train features z_i (n, 512) and head rows w_{y_i} of the default grokking MLP after
  ``steps`` full-batch steps (memorised by ~170), with the mask of non-zero rows."""
  from ncjax.models import head_weights
  from ncjax.tasks import make_task
  from ncjax.train.config import base_config
  from ncjax.train.state import create_states, make_loss, make_train_step
  task = make_task(base_config())
  state = create_states(task.config, task.model, task.example_inputs, task.mesh)
  step, stream = make_train_step(make_loss(task.config), task.mesh), task.train_stream(0)
  for _ in range(steps):
    state, _ = step(state, next(stream))
  params = jax.tree.map(lambda x: x[0], state.params)
  inputs, labels = task.examples("train", task.num_classes ** 2)  # every train pair
  _, z = task.model.apply({"params": params}, inputs)
  w, _ = head_weights(params)
  return np.float64(z), np.float64(w[labels]), np.asarray(jnp.any(z != 0, axis=1))


def slq_pair(kind, n, seed):
  """Two (n, 64) feature matrices: Gaussian, or Z = G (n x 8) R (8 x 64) + 0.1 noise."""
  if kind == "isotropic":
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 64)), rng.normal(size=(n, 64))
  return structured(n, 64, rank=8, seed=seed), structured(n, 64, rank=8, seed=seed + 1)


def assert_slq_close(z1, z2, exact, mask=None, seeds=3):
  """Default SLQ within 2% of ``exact`` for several keys, its error covered by 4 standard
  errors plus the pinching bias the standard error does not see (<= 2e-4 relative)."""
  slq = jax.jit(ncjax.joint_entropy_slq)
  for seed in range(seeds):
    estimate, stderr = slq(jnp.float32(z1), jnp.float32(z2), key=jax.random.key(seed), mask=mask)
    error = abs(float(estimate) - exact)
    assert error <= 0.02 * exact
    assert error <= 4 * float(stderr) + 2e-4 * exact


@pytest.mark.parametrize("kind", [pytest.param("isotropic", marks=pytest.mark.slow),
                                  pytest.param("structured", marks=pytest.mark.slow),
                                  pytest.param("grokking", marks=pytest.mark.slow)])
def test_slq_within_2_percent_and_covered_by_its_error(kind):
  n = 2048
  if kind == "grokking":  # sample features and head rows of a trained grokking MLP
    z1, z2, alive = grokking_features()
    z1, z2 = z1[alive][:n], z2[alive][:n]
  else:
    z1, z2 = slq_pair(kind, n, seed={"isotropic": 0, "structured": 1}[kind])
  exact = ref.joint_entropy(z1, z2)  # dense n x n, float64
  assert_slq_close(z1, z2, exact)


@pytest.mark.slow
def test_slq_at_n_1e5_against_the_exact_moment_route():
  n = 100_000  # structured features (isotropic ones are covered at n = 2048)
  z1, z2 = slq_pair("structured", n, seed=5)
  mask = np.random.default_rng(7).random(n) > 0.01  # and a mask
  exact = float(jax.jit(ncjax.joint_entropy, static_argnames="method")(
      jnp.float32(z1), jnp.float32(z2), mask=mask))
  assert_slq_close(z1, z2, exact, mask=mask, seeds=1)


@pytest.mark.slow
def test_slq_compiles_once_across_keys_and_vmaps_over_them():
  z1, z2 = jnp.float32(structured(600, 30, seed=3)), jnp.float32(structured(600, 30, seed=4))
  slq = jax.jit(chex.assert_max_traces(ncjax.joint_entropy_slq, n=1))
  keys = jax.random.split(jax.random.key(0), 3)
  singles = [slq(z1, z2, key=k)[0] for k in keys]
  batched = jax.vmap(lambda k: ncjax.joint_entropy_slq(z1, z2, key=k))(keys)[0]
  np.testing.assert_allclose(batched, singles, rtol=1e-4)
  assert len(set(np.asarray(singles).tolist())) == 3  # the key matters


@pytest.mark.slow
def test_joint_entropy_routes_are_arguments_and_slq_is_never_chosen():
  z1, z2 = (jnp.float32(structured(3000, 36, rank=4, seed=s)) for s in (3, 4))
  lower = lambda method: jax.jit(ncjax.joint_entropy, static_argnames="method").lower(
      z1, z2, method=method)
  assert "1296x1296" in lower("auto").as_text()  # 36^2 = 1296 Kronecker columns < n
  assert "1296x1296" in lower("kronecker").as_text()
  gram = lower("gram")
  assert "1296x1296" not in gram.as_text() and "3000x3000" in gram.as_text()
  np.testing.assert_allclose(gram.compile()(z1, z2), lower("auto").compile()(z1, z2),
                             rtol=1e-4)
  with pytest.raises(ValueError, match="joint_entropy_slq"):
    ncjax.joint_entropy(z1, z2, method="slq")
  with pytest.raises(ValueError, match="method"):
    ncjax.mir(z1, z2, method="exact")
  key = jax.random.key(0)
  with pytest.raises(TypeError):
    ncjax.joint_entropy_slq(z1, z2, key)  # the key is keyword-only and the caller's
  with pytest.raises(ValueError, match="num_probes"):
    ncjax.joint_entropy_slq(z1, z2, key=key, num_probes=1)
  with pytest.raises(ValueError, match="rank \\+ order"):
    ncjax.joint_entropy_slq(z1[:50], z2[:50], key=key, rank=64)
  with pytest.raises(ValueError, match="order must be < n"):
    ncjax.joint_entropy_slq(z1[:10], z2[:10], key=key, order=10)
  # The default rank fits the problem: min(64, n - order) on 50 rows.
  assert np.isfinite(ncjax.joint_entropy_slq(z1[:50], z2[:50], key=key)[0])
