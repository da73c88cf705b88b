"""PNG plots of logged metric trajectories (one seed, or the median and range of several).

Used by the CLI and studies after training (:func:`run_figures`) and by ``ncjax analyze``;
of ncjax it imports only the key names (:mod:`ncjax.keys`), and no JAX. The matplotlib
backend is the caller's choice (the CLI selects Agg).
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ncjax import keys


def _save(fig, path: str, dpi: int) -> None:
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def first_step(records: list[dict], key: str, threshold: float) -> int | None:
  """First logged step whose ``key`` (every seed) reaches ``threshold``."""
  return next((r["step"] for r in records if np.min(r[key]) >= threshold), None)


def _band(ax, steps, values, label, **style) -> str:
  """A line, plus a min-max band across seeds when values are (T, S); returns its colour."""
  values = np.asarray(values, float)
  if values.ndim == 2 and values.shape[1] == 1:
    values = values[:, 0]
  if values.ndim == 1:
    line, = ax.plot(steps, values, label=label, **style)
    return line.get_color()
  line, = ax.plot(steps, np.median(values, 1), label=f"{label} (median of {values.shape[1]})",
                  **style)
  ax.fill_between(steps, values.min(1), values.max(1), color=line.get_color(), alpha=0.2)
  return line.get_color()


def _references(ax, records: list[dict], key: str, colour: str) -> None:
  """The chance level of ``key``: its mean (dash-dot) in a band of +- 2 std over the
  null's draws (median over seeds); and its simplex-ETF value (dashed); where logged."""
  null, null_std, etf = (key + suffix for suffix in keys.REFERENCES)
  if null in records[0]:
    rows = [r for r in records if null in r]
    steps = [max(r["step"], 1) for r in rows]
    median = lambda name: np.array([np.median(r[name]) for r in rows])
    mean, std = median(null), median(null_std)
    ax.plot(steps, mean, color=colour, linestyle="-.", linewidth=0.8,
            label=f"{key} chance (+-2 sd)")
    ax.fill_between(steps, mean - 2 * std, mean + 2 * std, color=colour, alpha=0.25,
                    linewidth=0)
  if etf in records[-1]:
    ax.axhline(np.median(records[-1][etf]), color=colour, linestyle="--",
               linewidth=1, label=f"{key} simplex ETF")


def curves(records: list[dict], path: str, title: str = "") -> None:
  """Accuracy, NC1 and VCI (log scale), and MIR/HDR against step (log axis), with the
  steps where train accuracy first reaches 100% and test accuracy 95% marked, each
  metric's chance band and simplex-ETF value where logged (:func:`_references`)."""
  steps = [max(r["step"], 1) for r in records]
  fig, axes = plt.subplots(len(keys.CURVES), 1, figsize=(7, 8), sharex=True)
  marks = {"train acc 100%": (first_step(records, keys.TRAIN_ACCURACY, 1.0), ":"),
           "test acc >= 95%": (first_step(records, keys.TEST_ACCURACY, 0.95), "--")}
  dotted = (keys.SAMPLE, keys.TEST_COLLAPSE)
  for ax, (label, panel, yscale) in zip(axes, keys.CURVES, strict=True):
    for key in panel:
      if key in records[0]:
        colour = _band(ax, steps, [r[key] for r in records], key,
                       linestyle=":" if key.startswith(dotted) else "-")
        _references(ax, records, key, colour)
    for step, style in marks.values():
      if step is not None:
        ax.axvline(max(step, 1), color="k", linestyle=style, linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale(yscale)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
  axes[-1].set_xlabel("step")
  shown = [f"{name} at step {step} ({'dotted' if style == ':' else 'dashed'})"
           for name, (step, style) in marks.items() if step is not None]
  axes[0].set_title(title + ("\n" + "; ".join(shown) if shown else ""), fontsize=10)
  _save(fig, path, dpi=120)


SPLIT_STYLE = {keys.TRAIN: dict(color="C0"), keys.TEST: dict(color="C1", linestyle="--"),
               "": dict(color="C2")}


def _family(key: str) -> tuple[str, str]:
  """(family, split) of a key: ``test_collapse/nc1`` -> (``nc1``, ``test``); a key of no
  split (``fourier/key_fraction``) is its own family."""
  prefix, _, name = key.partition("/")
  return (name, keys.SPLIT_OF[prefix]) if prefix in keys.SPLIT_OF and name else (key, "")


def _is_reference(key: str, record: dict) -> bool:
  """True for a chance level or ETF value logged beside a metric (``keys.REFERENCES``)."""
  return any(key.endswith(suffix) and key[:-len(suffix)] in record
             for suffix in keys.REFERENCES)


def families(records: list[dict], path: str, title: str = "", columns: int = 4) -> None:
  """One panel per metric family against step (log axis), train and test of it together
  (the same colours in every panel), a shared x label; median and band for seeds; each
  key's chance band and simplex-ETF value in its panel (:func:`_references`)."""
  panels: dict[str, list[tuple[str, str]]] = {}
  for key in (k for k in records[0] if k != "step" and not _is_reference(k, records[0])):
    family, split = _family(key)
    panels.setdefault(family, []).append((split, key))
  columns = min(columns, len(panels))
  rows = -(-len(panels) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows + 0.8),
                           sharex=True, squeeze=False)
  steps = [max(r["step"], 1) for r in records]
  for ax, (family, members) in zip(axes.flat, panels.items(), strict=False):
    for split, key in members:
      colour = _band(ax, steps, [r[key] for r in records], split or key, **SPLIT_STYLE[split])
      _references(ax, records, key, colour)
    ax.set_title(family, fontsize=10)
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    if any(split for split, _ in members):
      ax.legend(fontsize=7)
  for ax in axes.flat[len(panels):]:
    ax.set_visible(False)
  fig.supxlabel("step")
  fig.suptitle(title)
  _save(fig, path, dpi=110)


def overlay(logs: dict[str, list[dict]], shown, path: str, title: str = "") -> None:
  """One panel per key of ``shown`` against step (log axis), one line (median and band over seeds)
  per run of ``logs`` (run name -> records), with its chance band and ETF value where
  logged; keys a run did not log are left out."""
  fig, axes = plt.subplots(len(shown), 1, figsize=(7, 1.9 * len(shown) + 0.6), sharex=True,
                           squeeze=False)
  for ax, key in zip(axes[:, 0], shown, strict=True):
    for name, records in logs.items():
      rows = [r for r in records if key in r]
      if rows:
        _references(ax, rows, key, _band(ax, [max(r["step"], 1) for r in rows],
                                         [r[key] for r in rows], name))
    ax.set_ylabel(key, fontsize=8)
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
  axes[0, 0].legend(fontsize=7)
  axes[-1, 0].set_xlabel("step")
  fig.suptitle(title, fontsize=10)
  _save(fig, path, dpi=110)


def transfer(summary: dict, path: str, title: str = "") -> None:
  """Probe test accuracy against VCI of the source train features, one panel per regime:
  recipe means with +- 1 sd over seeds, coloured by factor; each title states rho, its
  interval, n recipes and n seeds (``summary`` as ``ncjax.studies`` writes it)."""
  regimes, recipes = summary["regimes"], summary["recipes"]
  fig, axes = plt.subplots(1, len(regimes), figsize=(4.6 * len(regimes), 4.2), squeeze=False)
  factor = lambda r: r["factor"].split("=")[0]
  colours = {f: f"C{i}" for i, f in enumerate(dict.fromkeys(map(factor, recipes.values())))}
  for ax, (regime, g) in zip(axes[0], regimes.items(), strict=True):
    for name, r in recipes.items():
      ax.errorbar(r["vci/source"], 100 * r[f"accuracy/{regime}"], xerr=r["vci/source_sd"],
                  yerr=100 * r[f"accuracy/{regime}_sd"], fmt="o", color=colours[factor(r)],
                  capsize=2, label=factor(r))
      ax.annotate(name, (r["vci/source"], 100 * r[f"accuracy/{regime}"]), fontsize=6,
                  xytext=(3, 3), textcoords="offset points")
    lo, hi = g["interval"]
    ax.set_title(f"{regime} ({g['target']}, shots {g['shots']})\nrho = {g['rho']:+.2f} "
                 f"[{lo:+.2f}, {hi:+.2f}], {g['n_recipes']} recipes x {g['n_seeds']} seeds",
                 fontsize=9)
    ax.set_xlabel("VCI of the source features (source train split)")
    ax.grid(alpha=0.3)
  handles, labels = axes[0, 0].get_legend_handles_labels()
  unique = dict(zip(labels, handles, strict=True))
  axes[0, 0].legend(unique.values(), unique.keys(), fontsize=7)
  axes[0, 0].set_ylabel("probe test accuracy (%), mean +- sd")
  fig.suptitle(f"{title}\n95% intervals: bootstrap over seeds within recipes", fontsize=10)
  _save(fig, path, dpi=120)


def _by_value(records: list[dict], key: str, values, seeds: int) -> dict[str, list[dict]]:
  """{"name=value": records of that value's seeds} of a swept run (value-major members)."""
  part = lambda x, v: x[v * seeds:(v + 1) * seeds] if isinstance(x, list) else x
  name = key.split(".")[-1]
  return {f"{name}={value:g}": [{k: part(x, v) for k, x in r.items()} for r in records]
          for v, value in enumerate(values)}


def sweep(records: list[dict], key: str, values, seeds: int, path: str, title: str = "") -> None:
  """The final value of each of :data:`ncjax.keys.SWEEP` against the swept value (median and
  min-max band over the seeds of each value)."""
  fig, axes = plt.subplots(1, len(keys.SWEEP), figsize=(3.2 * len(keys.SWEEP), 3.2))
  x = np.asarray(values, float)
  for ax, metric in zip(axes, keys.SWEEP, strict=True):
    y = np.reshape(np.asarray(records[-1][metric], float), (len(x), seeds))
    ax.plot(x, np.median(y, 1), "o-")
    if seeds > 1:
      ax.fill_between(x, y.min(1), y.max(1), alpha=0.2)
    if x.min() > 0 and x.max() / x.min() >= 10:
      ax.set_xscale("log")
      ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel(key)
    ax.set_title(metric, fontsize=9)
    ax.grid(alpha=0.3)
  fig.suptitle(f"{title} (step {records[-1]['step']}" + (f", {seeds} seeds)" if seeds > 1 else ")"),
               fontsize=10)
  _save(fig, path, dpi=110)


def run_figures(records: list[dict], config, workdir: str) -> list[str]:
  """The figures of one run in ``workdir``: ``curves.png``; with layer metrics
  ``layers.png`` (:func:`layers`); for a vmapped sweep also
  ``sweep.png`` (:func:`sweep`) and ``sweep_curves.png`` (the metrics over steps, one line
  per swept value). Returns the file names written."""
  title = config.get("name", "")
  curves(records, os.path.join(workdir, "curves.png"), title=title)
  written = ["curves.png"]
  if config.get("layer_metrics"):
    layers(records, os.path.join(workdir, "layers.png"), title=title)
    written.append("layers.png")
  if not config.get("sweep_key"):
    return written
  key, values, seeds = config.sweep_key, config.sweep_values, config.num_seeds
  sweep(records, key, values, seeds, os.path.join(workdir, "sweep.png"), title=title)
  overlay(_by_value(records, key, values, seeds), keys.SWEEP,
          os.path.join(workdir, "sweep_curves.png"), title=title)
  return [*written, "sweep.png", "sweep_curves.png"]


def points(rows: list[dict], x_name: str, shown, path: str, title: str = "") -> None:
  """One panel per key of ``shown`` against ``x_name`` (alpha on a path, sparsity), one
  line per ``run`` of ``rows`` (dicts with ``run``, ``x_name`` and the keys)."""
  runs = list(dict.fromkeys(r["run"] for r in rows))
  columns = 4
  lines = -(-len(shown) // columns)
  fig, axes = plt.subplots(lines, columns, figsize=(13, 3 * lines), squeeze=False)
  for ax, key in zip(axes.flat, shown, strict=False):
    for run in runs:
      part = [r for r in rows if r["run"] == run]
      ax.plot([r[x_name] for r in part], [r[key] for r in part], "o-", label=run, markersize=3)
    if key.endswith(keys.LOG_SCALE):
      ax.set_yscale("log")
    ax.set_title(key, fontsize=9)
    ax.set_xlabel(x_name)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(shown):]:
    ax.axis("off")
  axes[0, 0].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  _save(fig, path, dpi=110)


def layers(records: list[dict], path: str, title: str = "", lines: int = 7) -> None:
  """Each metric logged per layer (``layer<i>/<metric>``, ``keys.LAYER_METRICS``)
  against depth (block 1, 2, ..., then the penultimate features, ``collapse/*``), one line
  per logged step (up to ``lines`` of them, log-spaced; median over seeds)."""
  first = keys.key(keys.layer(1), "")
  panels = [k.split("/", 1)[1] for k in records[-1] if k.startswith(first)]
  depth = sorted({int(k.split("/")[0].removeprefix(keys.LAYER)) for k in records[-1]
                  if k.startswith(keys.LAYER)})
  names = [f"block {i}" for i in depth] + ["features"]
  picks = sorted(set(np.unique(np.geomspace(1, len(records), lines).astype(int) - 1)))
  colours = plt.cm.viridis(np.linspace(0, 1, len(picks)))
  fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4))
  for ax, metric in zip(axes, panels, strict=True):
    for colour, t in zip(colours, picks, strict=True):
      r = records[t]
      y = [np.median(r[keys.key(keys.layer(i), metric)]) for i in depth]
      y.append(np.median(r[keys.key(keys.COLLAPSE, metric)]))
      ax.plot(range(len(names)), y, "o-", color=colour, markersize=3, label=f"step {r['step']}")
    if metric in keys.LOG_SCALE:
      ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=45, fontsize=7)
    ax.set_title(metric, fontsize=9)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=6)
  fig.suptitle(title, fontsize=10)
  _save(fig, path, dpi=110)
