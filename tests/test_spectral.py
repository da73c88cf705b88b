"""ncjax.spectral on CPU: under vmap no LAPACK kernel receives a batch (a batched kernel
splits it over XLA:CPU's intra-op pool and can deadlock it: docs/numerics.md), and the
values and gradients are those of the batched kernels."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax import spectral

K = np.random.default_rng(0).normal(size=(5, 6, 6)).astype(np.float32)
K = K @ K.transpose(0, 2, 1)


@pytest.mark.parametrize("fn", [jax.vmap(spectral.psd_eigvalsh), spectral.psd_eigh,
                                jax.vmap(jax.grad(spectral.psd_entropy))])
def test_no_lapack_kernel_gets_a_batch_on_cpu(fn):
  text = jax.jit(fn).lower(K).as_text()
  calls = [line for line in text.splitlines() if re.search(r"custom_call @lapack_", line)]
  assert calls, "expected LAPACK calls on CPU"
  assert not [c for c in calls if "5x6x6" in c], calls


def test_one_at_a_time_keeps_values_and_gradients():
  np.testing.assert_allclose(jax.jit(jax.vmap(spectral.psd_eigvalsh))(K),
                             np.linalg.eigvalsh(K.astype(np.float64)), rtol=1e-4, atol=1e-4)
  w, v = jax.jit(spectral.psd_eigh)(K)
  np.testing.assert_allclose(np.einsum("bij,bj,bkj->bik", v, w, v), K, rtol=1e-4, atol=1e-3)
  grad = jax.jit(jax.vmap(jax.grad(spectral.psd_entropy)))(K)
  want = jnp.stack([jax.grad(spectral.psd_entropy)(k) for k in K])
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)
