"""After-the-fact analysis: metrics over parameter snapshots, and plots of trajectories."""

from ncjax.analysis.trajectory import evaluate, metric_function, stack, trajectory_metrics
