"""Figures: each metric's chance band and simplex-ETF line drawn where logged."""

import matplotlib.collections
import numpy as np
import pytest

from ncjax import plots

MIR, NULL, SPREAD, ETF = 0.9, 0.95, 0.01, 0.98


def _records(seeds=None):
  value = (lambda v: v) if seeds is None else (lambda v: [v] * seeds)
  return [{"step": step, "train/accuracy": value(0.5), "test/accuracy": value(0.2),
           "collapse/mir": value(MIR), "collapse/mir_null": value(NULL),
           "collapse/mir_null_std": value(SPREAD), "collapse/mir_etf": value(ETF),
           "collapse/nc1": value(2.0)} for step in (0, 10, 100)]


@pytest.fixture
def figures(monkeypatch):
  """The figures the plot functions would save."""
  saved = []
  monkeypatch.setattr(plots, "_save", lambda fig, path, dpi: saved.append(fig))
  return saved


def _bands_and_lines(ax):
  """(y-extent of each band, y of each dashed line) in ``ax``."""
  extents = [tuple(np.round([p.vertices[:, 1].min(), p.vertices[:, 1].max()], 6))
             for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)
             for p in c.get_paths()]
  levels = [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
  return extents, levels


@pytest.mark.parametrize("seeds", [None, 3])
def test_curves_draw_the_null_band_and_the_etf_line(figures, seeds):
  plots.curves(_records(seeds), "unused.png")
  ratio = figures[0].axes[2]
  extents, levels = _bands_and_lines(ratio)
  assert (0.93, 0.97) in extents  # NULL -+ 2 SPREAD
  assert levels == [ETF]


def test_families_fold_the_references_into_their_metrics_panel(figures):
  plots.families(_records(), "unused.png", columns=2)
  shown = [ax for ax in figures[0].axes if ax.get_visible()]
  assert sorted(ax.get_title() for ax in shown) == ["accuracy", "mir", "nc1"]
  mir = next(ax for ax in shown if ax.get_title() == "mir")
  extents, levels = _bands_and_lines(mir)
  assert (0.93, 0.97) in extents  # NULL -+ 2 SPREAD
  assert levels == [ETF]
