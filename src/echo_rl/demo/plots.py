"""The demo's own plot: the SFT curve with the selected checkpoint (every other figure is
:mod:`echo_rl.report.plots`'). Returns False (and writes nothing) when there is nothing to draw."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_sft(summary: dict[str, Any], path: Path) -> bool:
    curve = summary["sft"]["curve"]
    if not curve:
        return False
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100, layout="constrained")
    steps = [p["step"] for p in curve]
    ax.plot(steps, [p["pass"] for p in curve], "-o", color="black", linewidth=2.4, label="validation (all)",
            markersize=3)
    families = sorted({f for p in curve for f in p["families"]})
    for i, family in enumerate(families):
        ax.plot(steps, [p["families"].get(family, float("nan")) for p in curve], "-", alpha=0.6,
                color=plt.get_cmap("tab20")(i % 20), label=family)
    ax.axvline(summary["sft"]["selected_step"], color="red", linestyle=":", label="selected")
    ax.set(title="SFT: greedy validation pass@1", xlabel="SFT step", ylabel="pass@1")
    ax.grid(alpha=0.3)
    env = [(p["step"], p["env_ce_heldout"]) for p in curve if p.get("env_ce_heldout") is not None]
    if env:
        ax2.plot(*zip(*env), "-o", markersize=3, color="C0")
    vocab = summary.get("prepare", {}).get("vocab_size")
    if vocab:
        ax2.axhline(math.log(vocab), color="tab:red", linestyle="--", linewidth=1)
        ax2.annotate(f"uniform guess ln|V| = {math.log(vocab):.2f}", (0.01, math.log(vocab)),
                     xycoords=("axes fraction", "data"), fontsize=7, color="tab:red", va="bottom")
    ax2.axvline(summary["sft"]["selected_step"], color="red", linestyle=":")
    ax2.set(title="SFT: held-out env CE (T=1)", xlabel="SFT step", ylabel="nats / token")
    ax2.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    fig.savefig(path)
    plt.close(fig)
    return True
