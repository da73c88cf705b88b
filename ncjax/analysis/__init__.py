"""After-the-fact analysis: metrics over parameter snapshots, plots of trajectories, and
runs loaded for notebooks."""

from ncjax.analysis.runs import Run, load_run
from ncjax.analysis.trajectory import evaluate, metric_function, stack, trajectory_metrics
