"""Process settings for the tests, before JAX starts its backend: eight fake CPU devices
for the sharding tests, the XLA:CPU scheduler flag the CLI sets (see ncjax.cli),
matplotlib's Agg backend, and a persistent compilation cache private to this session
(inherited by the CLI subprocesses), so the many tiny runs that compile the same train
step and metrics programs compile them once (shared by the pytest-xdist workers)."""

import os
import tempfile

import chex
import jax
import matplotlib

from ncjax import cli

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{cli.FLAG}=false".strip()
chex.set_n_cpu_devices(8)
# pytest-xdist workers inherit the controller's environment: one cache for the session.
if "NCJAX_TESTS_XLA_CACHE" not in os.environ:
  os.environ["NCJAX_TESTS_XLA_CACHE"] = tempfile.mkdtemp(prefix="ncjax-tests-xla-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["NCJAX_TESTS_XLA_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
matplotlib.use("Agg")
