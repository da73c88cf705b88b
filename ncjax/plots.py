"""PNG plots of logged metric trajectories (one seed, or the median and range of several).

Used by the CLI after training and by ``ncjax analyze``; imports neither. The matplotlib
backend is the caller's choice (the CLI selects Agg).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np


def first_step(records: list[dict], key: str, threshold: float) -> int | None:
  """First logged step whose ``key`` (every seed) reaches ``threshold``."""
  return next((r["step"] for r in records if np.min(r[key]) >= threshold), None)


def _band(ax, steps, values, label, **style):
  """A line, plus a min-max band across seeds when values are (T, S)."""
  values = np.asarray(values, float)
  if values.ndim == 1:
    ax.plot(steps, values, label=label, **style)
    return
  line, = ax.plot(steps, np.median(values, 1), label=f"{label} (median of {values.shape[1]})",
                  **style)
  ax.fill_between(steps, values.min(1), values.max(1), color=line.get_color(), alpha=0.2)


def curves(records: list[dict], path: str, title: str = "") -> None:
  """Accuracy, NC1 and VCI (log scale), and MIR/HDR against step (log axis), with the
  steps where train accuracy first reaches 100% and test accuracy 95% marked."""
  steps = [max(r["step"], 1) for r in records]
  panels = (("accuracy", ("train/accuracy", "test/accuracy"), "linear"),
            ("collapse", ("collapse/nc1", "collapse/vci", "test_collapse/nc1",
                          "test_collapse/vci"), "log"),
            ("ratio", ("collapse/mir", "collapse/hdr", "sample/mir", "sample/hdr"), "linear"))
  fig, axes = plt.subplots(len(panels), 1, figsize=(7, 8), sharex=True)
  marks = {"train acc 100%": (first_step(records, "train/accuracy", 1.0), ":"),
           "test acc >= 95%": (first_step(records, "test/accuracy", 0.95), "--")}
  for ax, (label, keys, yscale) in zip(axes, panels):
    for key in keys:
      if key in records[0]:
        _band(ax, steps, [r[key] for r in records], key,
              linestyle=":" if key.startswith(("sample", "test_")) else "-")
    for step, style in marks.values():
      if step is not None:
        ax.axvline(max(step, 1), color="k", linestyle=style, linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale(yscale)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  axes[-1].set_xlabel("step")
  shown = [f"{name} at step {step} ({'dotted' if style == ':' else 'dashed'})"
           for name, (step, style) in marks.items() if step is not None]
  axes[0].set_title(title + ("\n" + "; ".join(shown) if shown else ""), fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def grid(records: list[dict], path: str, title: str = "", columns: int = 4) -> None:
  """One small panel per logged key against step (log axis); median and band for seeds."""
  keys = [k for k in records[0] if k != "step"]
  rows = -(-len(keys) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), sharex=True,
                           squeeze=False)
  steps = [max(r["step"], 1) for r in records]
  for ax, key in zip(axes.flat, keys):
    _band(ax, steps, [r[key] for r in records], key)
    ax.set_title(key, fontsize=9)
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
  for ax in axes.flat[len(keys):]:
    ax.set_visible(False)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def overlay(logs: dict[str, list[dict]], keys, path: str, title: str = "") -> None:
  """One panel per key against step (log axis), one line (median and band over seeds)
  per run of ``logs`` (run name -> records); keys a run did not log are left out."""
  fig, axes = plt.subplots(len(keys), 1, figsize=(7, 1.9 * len(keys) + 0.6), sharex=True,
                           squeeze=False)
  for ax, key in zip(axes[:, 0], keys):
    for name, records in logs.items():
      rows = [r for r in records if key in r]
      if rows:
        _band(ax, [max(r["step"], 1) for r in rows], [r[key] for r in rows], name)
    ax.set_ylabel(key, fontsize=8)
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=7)
  axes[-1, 0].set_xlabel("step")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def transfer(rows: list[dict], rho: dict, path: str, title: str = "") -> None:
  """Probe test accuracy against the source features' VCI and NC1 (one point per source
  model, labelled), with the Spearman correlations in the titles."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
  probe = [100 * r["probe_test_accuracy"] for r in rows]
  for ax, key, label in zip(axes, ("vci", "nc1"), ("VCI", "NC1")):
    x = [r[key] for r in rows]
    ax.scatter(x, probe)
    for xi, yi, r in zip(x, probe, rows):
      ax.annotate(r["source"], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded labels
    ax.set_xlabel(f"{label} of the source features (source train split)")
    ax.set_title(f"Spearman rho = {rho[key]:+.2f}", fontsize=10)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("linear-probe test accuracy on target classes (%)")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
