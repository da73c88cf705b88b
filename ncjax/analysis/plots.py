"""PNG plots of logged metric trajectories."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def grokking_step(records: list[dict], threshold: float = 0.95) -> int | None:
  """First logged step whose test accuracy reaches ``threshold``."""
  return next((r["step"] for r in records if r["test/accuracy"] >= threshold), None)


def curves(records: list[dict], path: str, title: str = "") -> None:
  """Accuracy (log-step axis) above MIR and HDR, with the grokking step marked."""
  steps = [max(r["step"], 1) for r in records]
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
  for key in ("train/accuracy", "test/accuracy"):
    top.plot(steps, [r[key] for r in records], label=key)
  for key in ("collapse/mir", "collapse/hdr", "sample/mir", "sample/hdr"):
    bottom.plot(steps, [r[key] for r in records], label=key,
                linestyle="-" if key.startswith("collapse") else ":")
  grok = grokking_step(records)
  for ax in (top, bottom):
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if grok is not None:
      ax.axvline(max(grok, 1), color="k", linestyle="--", linewidth=1)
  top.set_ylabel("accuracy")
  bottom.set_ylabel("ratio")
  bottom.set_xlabel("step")
  top.set_title(title + (f"  (test acc >= 95% at step {grok})" if grok is not None else ""))
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
