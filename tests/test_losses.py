"""Losses against float64 NumPy references."""

import numpy as np
import pytest

from ncjax import losses


def reference_cross_entropy(logits, labels, smoothing, mask):
  logits = np.asarray(logits, np.float64)
  c = logits.shape[1]
  logp = logits - logits.max(1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(1, keepdims=True))
  target = (1 - smoothing) * np.eye(c)[labels] + smoothing / c
  per_row = -(target * logp).sum(1)
  return per_row[mask].mean()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_reference_with_mask(smoothing):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(12, 5)).astype(np.float32) * 3
  labels = rng.integers(0, 5, 12)
  mask = rng.random(12) < 0.7
  got = losses.cross_entropy(logits, labels, label_smoothing=smoothing, mask=mask)
  np.testing.assert_allclose(got, reference_cross_entropy(logits, labels, smoothing, mask),
                             rtol=1e-5)
  full = losses.cross_entropy(logits, labels, label_smoothing=smoothing)
  np.testing.assert_allclose(full, reference_cross_entropy(logits, labels, smoothing,
                                                           np.ones(12, bool)), rtol=1e-5)


def test_cross_entropy_rejects_bad_smoothing():
  with pytest.raises(ValueError, match="label_smoothing"):
    losses.cross_entropy(np.zeros((2, 3), np.float32), np.zeros(2, int), label_smoothing=1.0)
