"""Process settings for the tests, before JAX starts its backend: eight fake CPU devices
for the sharding tests, the XLA:CPU scheduler flag the CLI sets (see ncjax.cli), and
matplotlib's Agg backend."""

import os

import chex
import matplotlib

from ncjax import cli

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --{cli.FLAG}=false".strip()
chex.set_n_cpu_devices(8)
matplotlib.use("Agg")
