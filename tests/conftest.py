"""Process settings for the tests, before JAX starts its backend: eight fake CPU devices
for the sharding and mesh tests (this process only: the CLI subprocesses see one device,
as on a real CPU machine, unless a test asks for more with ``tests.runs.device_env``;
the trainer in-process uses one of them outside tests/test_meshes.py), the XLA:CPU
scheduler flag the CLI sets (see ncjax.cli),
matplotlib's Agg backend, and a persistent compilation cache for the CLI subprocesses
(one per session), so the many tiny runs that compile the same train step and metrics
programs compile them once; this process itself uses none."""

import os
import tempfile

import jax
import matplotlib
import ml_collections
import pytest

from ncjax import cli

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{cli.FLAG}=false".strip()
jax.config.update("jax_num_cpu_devices", 8)
# pytest-xdist workers inherit the controller's environment: one cache for the session.
if "NCJAX_TESTS_XLA_CACHE" not in os.environ:
  os.environ["NCJAX_TESTS_XLA_CACHE"] = tempfile.mkdtemp(prefix="ncjax-tests-xla-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["NCJAX_TESTS_XLA_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
# Bounded, so JAX locks the cache around each read and write: the workers and the CLI
# processes share it, and an entry read while another process writes it crashed XLA.
os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(cli.CACHE_BYTES)
# This process (8 fake devices) uses no persistent cache: its executables are not the CLI
# subprocesses' (1 device), and XLA:CPU crashed here reading them. Disabled, not just
# unset, so that an in-process `ncjax` call (cli._process_settings) cannot turn it on.
# (Rare aborts inside XLA:CPU's compiler late in the full suite happened with it off too.)
jax.config.update("jax_enable_compilation_cache", False)
matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="module")
def _fresh_compile_caches():
  """Each test file starts with JAX's in-memory caches empty (compiled programs, traces):
  a worker that had compiled thousands of programs aborted or segfaulted inside XLA:CPU's
  compiler, at random, late in the full suite, with no persistent cache in use."""
  yield
  jax.clear_caches()


@pytest.fixture(autouse=True)
def _one_device_trainer(request, monkeypatch):
  """The trainer and analysis run on one device (mesh.data=1 unless a config sets it)
  except in the mesh tests: XLA:CPU programs with collectives over 8 fake devices on 2
  cores can hang (docs/scale.md), and one device is what a CPU user gets by default."""
  if request.module.__name__.endswith("test_meshes"):
    return
  from ncjax.train import meshes

  make_mesh = meshes.make_mesh

  def one_device(config):
    if config.mesh.data is None and jax.process_count() == 1:
      config = ml_collections.ConfigDict(config.to_dict())
      config.mesh.data = 1
    return make_mesh(config)

  monkeypatch.setattr(meshes, "make_mesh", one_device)


@pytest.fixture(scope="session")
def fashion_mnist_dir():
  """Where Debian's dataset-fashion-mnist puts the IDX files (.ci/run installs it);
  the test is skipped, saying so, on a machine without them."""
  from ncjax.data import images

  if not os.path.exists(os.path.join(images.FASHION_MNIST_IDX, "train-labels-idx1-ubyte.gz")):
    pytest.skip(f"Fashion-MNIST IDX files absent from {images.FASHION_MNIST_IDX}: "
                "`apt-get install dataset-fashion-mnist` (as .ci/run does)")
  return images.FASHION_MNIST_IDX


def pytest_collection_modifyitems(items):
  """chex's ``without_jit`` variants (op-by-op dispatch, seconds each) run in the full
  suite; the fast tier runs their ``with_jit`` twins, and tests/test_api.py calls every
  public callable eagerly against float64."""
  for item in items:
    if item.name.endswith("__without_jit"):
      item.add_marker(pytest.mark.slow)
