"""Shared timing helper for the side-by-side benchmarks."""

import time

import jax


def best_of(fn, *args, repeats: int = 5) -> float:
  """Best wall time in seconds of ``fn(*args)`` over ``repeats`` calls, after one warm-up.

  JAX results are blocked on; anything else (NumPy, PyTorch) is synchronous.
  """
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return min(times)


def optional_torch():
  """``torch`` if it is importable, else None (PyTorch is for the benchmarks only)."""
  try:
    import torch
  except ImportError:
    return None
  return torch


def table(header: list[str], rows: list[list]) -> str:
  """A Markdown table (pasteable into the README)."""
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)
