"""Training: state, jitted steps, on-device metrics, Orbax trajectories, the main loop."""

from ncjax.train.loop import NonFiniteLoss, train
from ncjax.train.steps import (
    create_state,
    create_states,
    make_metrics_fn,
    make_train_step,
    metrics,
    seed_splits,
)
