"""ncjax.spectral on CPU: under vmap no LAPACK kernel receives a batch (a batched kernel
splits it over XLA:CPU's intra-op pool and can deadlock it: docs/numerics.md), and the
values and gradients are those of the batched kernels."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ncjax
from ncjax import spectral

K = np.random.default_rng(0).normal(size=(5, 6, 6)).astype(np.float32)
K = K @ K.transpose(0, 2, 1)


def _collapse_metrics(k):
  """Every collapse metric of five vmapped feature sets (6 rows each, 3 classes)."""
  return jax.vmap(lambda z: ncjax.collapse_metrics(z, jnp.arange(6) % 3, num_classes=3))(k)


def _eigenvector_loss(eigh):
  """A sign-invariant function of eigenvalues and eigenvectors."""
  def loss(k):
    w, v = eigh(k)
    return jnp.sum(w**2) + jnp.sum(v**4 * jnp.arange(k.shape[-1]))
  return loss


@pytest.mark.parametrize("fn", [jax.vmap(spectral.psd_eigvalsh), spectral.psd_eigh,
                                jax.vmap(jax.grad(spectral.psd_entropy)),
                                jax.vmap(spectral.singular_values), _collapse_metrics,
                                jax.vmap(jax.grad(_eigenvector_loss(spectral.psd_eigh))),
                                jax.vmap(jax.grad(lambda a: spectral.singular_values(a).sum()))])
def test_no_lapack_kernel_gets_a_batch_on_cpu(fn):
  text = jax.jit(fn).lower(K).as_text()
  calls = [line for line in text.splitlines() if re.search(r"custom_call @lapack_", line)]
  assert calls, "expected LAPACK calls on CPU"
  assert not [c for c in calls if re.search(r"tensor<5x\d+x\d+x", c)], calls  # 5 stacked


def test_one_at_a_time_keeps_values_and_gradients():
  np.testing.assert_allclose(jax.jit(jax.vmap(spectral.psd_eigvalsh))(K),
                             np.linalg.eigvalsh(K.astype(np.float64)), rtol=1e-4, atol=1e-4)
  w, v = jax.jit(spectral.psd_eigh)(K)
  np.testing.assert_allclose(np.einsum("bij,bj,bkj->bik", v, w, v), K, rtol=1e-4, atol=1e-3)
  grad = jax.jit(jax.vmap(jax.grad(spectral.psd_entropy)))(K)
  want = jnp.stack([jax.grad(spectral.psd_entropy)(k) for k in K])
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)


def test_one_at_a_time_gradients_match_jax_rules():
  """Our eigh JVP (from the one-at-a-time primal) against JAX's own rule for eigh, and
  the singular values' gradient, both under jit(vmap(grad))."""
  ours = jax.jit(jax.vmap(jax.grad(_eigenvector_loss(spectral.psd_eigh))))(K)
  want = jax.vmap(jax.grad(_eigenvector_loss(jnp.linalg.eigh)))(K)
  np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
  ours = jax.jit(jax.vmap(jax.grad(lambda a: spectral.singular_values(a).sum())))(K)
  want = jax.vmap(jax.grad(lambda a: jnp.linalg.svd(a, compute_uv=False).sum()))(K)
  np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)
