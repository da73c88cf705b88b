"""Works around an XLA:CPU deadlock seen with vmapped metrics (jaxlib 0.10.2).

A jitted ``vmap`` of the full metrics function (several batched eigendecompositions and
matmuls) intermittently never returns on XLA:CPU: every XLA thread sits idle waiting for
work while the caller waits for the result (3/3 hangs with the default scheduler, 0/5 with
the flag below, on 2 cores). Disabling the concurrency-optimized CPU scheduler avoids it;
the flag only changes how XLA:CPU orders independent ops and has no effect on GPU/TPU.
It must be in ``XLA_FLAGS`` before JAX starts its backend, so ``import ncjax`` adds it
unless the user already chose a value.
"""

import os

FLAG = "xla_cpu_enable_concurrency_optimized_scheduler"


def disable_concurrency_optimized_scheduler() -> None:
  flags = os.environ.get("XLA_FLAGS", "")
  if FLAG not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} --{FLAG}=false".strip()
