"""ncjax.kernels.gram: the triangle-blocked x^T x against the float64 product."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax import kernels


@pytest.mark.parametrize("n,d,block", [(50, 1, 128), (50, 7, 3), (40, 130, 128),
                                       (30, 300, 64), (64, 512, 128), (20, 9, 1)])
def test_gram_is_the_full_product_exactly_symmetric(n, d, block):
  x = np.random.default_rng(d).normal(size=(n, d)).astype(np.float32)
  got = np.asarray(jax.jit(kernels.gram, static_argnames="block")(x, block=block))
  want = x.astype(np.float64).T @ x
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
  np.testing.assert_array_equal(got, got.T)


def test_gram_blocks_cut_the_products():
  """round(d / block) block rows: with d = 512, block 128, the products hold 10 of the
  16 (128 x 128) output blocks, not all 16."""
  x = jnp.ones((8, 512))
  text = jax.jit(lambda x: kernels.gram(x, block=128)).lower(x).as_text()
  dots = [line for line in text.splitlines() if "dot_general" in line]
  widths = sorted(int(w) for w in
                  re.findall(r"-> tensor<128x(\d+)xf32>", "\n".join(dots)))
  assert widths == [128, 256, 384, 512], widths


def test_gram_batched_and_compiles_once():
  fn = jax.jit(chex.assert_max_traces(kernels.gram, n=1))
  chex.clear_trace_counter()
  for seed in range(3):
    x = np.random.default_rng(seed).normal(size=(3, 20, 300)).astype(np.float32)
    got = fn(x)
    np.testing.assert_allclose(got, np.einsum("bni,bnj->bij", x, x), rtol=1e-4, atol=1e-3)
