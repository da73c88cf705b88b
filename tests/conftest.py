"""Eight fake CPU devices for the sharding tests; set before JAX starts its backend."""

import chex

chex.set_n_cpu_devices(8)
