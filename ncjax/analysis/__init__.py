"""After-the-fact analysis: plots of logged trajectories."""
