"""Mixed precision: ``config.model.dtype`` computes in bfloat16 with float32 parameters, and
logits and features reach the loss and the metrics in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ncjax.models import make_model
from ncjax.tasks import make_task
from ncjax.train import train
from ncjax.train.config import base_config, validate
from tests.test_classification import digits_config

IMAGES = jnp.linspace(-1, 1, 4 * 8 * 8 * 3).reshape(4, 8, 8, 3)
TOKENS = jnp.array([[1, 2, 5], [3, 4, 5], [0, 0, 5], [4, 1, 5]])
SMALL = [("mlp", TOKENS, {"vocab_size": 6, "embed_dim": 8, "hidden_dim": 16}),
         ("transformer", TOKENS, {"vocab_size": 6, "d_model": 8, "num_heads": 2, "mlp_dim": 16}),
         ("flax_transformer", TOKENS,
          {"vocab_size": 6, "d_model": 8, "num_heads": 2, "mlp_dim": 16}),
         ("image_mlp", IMAGES, {"width": 16}),
         ("cnn", IMAGES, {"channels": (4, 8), "features": 16}),
         ("resnet18", IMAGES, {"width": 4}),
         ("wrn", IMAGES, {"depth": 10, "width": 1})]


# The fast tier keeps the small token and image models; the residual networks and the
# transformers (the same casts, longer compiles) run in the full suite.
SLOW_MODELS = ("transformer", "flax_transformer", "resnet18", "wrn", "cnn")


@pytest.mark.parametrize("name, inputs, kwargs", [
    pytest.param(*s, marks=pytest.mark.slow) if s[0] in SLOW_MODELS else s for s in SMALL],
    ids=[s[0] for s in SMALL])
def test_bfloat16_model_keeps_float32_params_and_outputs_close_to_float32(name, inputs, kwargs):
  f32, bf16 = (make_model(name, 5, dtype, **kwargs) for dtype in ("float32", "bfloat16"))
  variables = f32.init(jax.random.key(0), inputs)
  assert jax.tree.map(lambda a: a.dtype, bf16.init(jax.random.key(0), inputs)) == jax.tree.map(
      lambda a: a.dtype, variables)
  assert {a.dtype for a in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  want = f32.apply(variables, inputs)
  got = bf16.apply(variables, inputs)
  for g, w in zip(got, want, strict=True):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, w, rtol=0.1, atol=0.05 * float(jnp.max(jnp.abs(w))))


def test_other_dtypes_are_a_config_error():
  config = base_config()
  config.model.dtype = "float16"
  with pytest.raises(ValueError, match=r"config.model.dtype must be float32 or bfloat16"):
    validate(config)


@pytest.mark.slow
def test_bfloat16_digits_run_trains_and_logs_finite_metrics(tmp_path):
  config = digits_config(steps=30, metrics_every=15, checkpoint_every=15)
  config.model.dtype = "bfloat16"
  records = train(make_task(config), tmp_path)
  assert records[-1]["step"] == 30
  assert records[-1]["train/loss"] < records[0]["train/loss"]
  assert records[-1]["train/accuracy"] > 0.5
  for key in ("train/loss", "collapse/nc1", "collapse/vci", "collapse/mir", "test_collapse/nc1"):
    assert all(np.isfinite(r[key]) for r in records), key
