"""Training, for any task: state and step, whole-split metrics, Orbax trajectories, the loop."""

from ncjax.train.loop import NonFiniteLoss, train
