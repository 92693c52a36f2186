"""The demo report's plots: final pass@1 per method with intervals, validation pass@1 and held-out env CE
over RL steps, and the SFT curve with the selected checkpoint. Each returns False (and writes nothing) when
there is nothing to draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from echo_rl.demo.config import DemoConfig
from echo_rl.report.tables import MODES
from echo_rl.report.tables import SPLITS as SPLIT_NAMES


def method_color(index: int, count: int) -> Any:
    """A distinct colour for method ``index`` of ``count`` (matplotlib's 10-colour cycle, tab20 beyond)."""
    return f"C{index}" if count <= 10 else plt.get_cmap("tab20")(index % 20)


def plot_final(summary: dict[str, Any], cfg: DemoConfig, path: Path) -> bool:
    table = summary["table"]
    keys = [f"{s}/{m}" for s in cfg.eval.splits for m in MODES]
    names, labels = table["methods"], table["columns"]
    fig, ax = plt.subplots(figsize=(7.5, 3.8), dpi=100)
    width = 0.8 / max(len(names), 1)
    drawn = False
    for i, (name, label) in enumerate(zip(names, labels)):
        xs, ys, lo, hi = [], [], [], []
        for j, key in enumerate(keys):
            score = table["rows"][name][key]
            if score:
                xs.append(j + i * width)
                ys.append(100 * score["value"])
                lo.append(100 * (score["value"] - score["low"]))
                hi.append(100 * (score["high"] - score["value"]))
        if xs:
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label, color=method_color(i, len(names)))
            drawn = True
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"{SPLIT_NAMES.get(k.split('/')[0], k)}\n{k.split('/')[1]}" for k in keys], fontsize=8)
    ax.set(ylabel="pass@1 (%)", title="Final pass@1 with 95% intervals (seeds pooled)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    if drawn:
        fig.savefig(path)
    plt.close(fig)
    return drawn


def plot_method_curves(summary: dict[str, Any], key: str, title: str, ylabel: str, path: Path,
                        base_value: float | None = None) -> bool:
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    methods = [m for m in summary["table"]["methods"] if m != "base"]
    labels = dict(zip(summary["table"]["methods"], summary["table"]["columns"]))
    drawn = False
    for i, method in enumerate(methods, start=1):
        runs = [r for r in summary["runs"] if r["method"] == method]
        for k, run in enumerate(runs):
            series = run[key]
            if series:
                steps, values = zip(*series)
                ax.plot(steps, values, "-o", color=method_color(i, len(methods) + 1), markersize=3,
                        alpha=0.9 if k == 0 else 0.5,
                        label=labels[method] if k == 0 else None)
                drawn = True
    if base_value is not None:
        ax.axhline(base_value, color=method_color(0, len(methods) + 1), linestyle="--", label="base (SFT)")
    ax.set(title=title, xlabel="RL step", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if drawn:
        fig.savefig(path)
    plt.close(fig)
    return drawn


def plot_sft(summary: dict[str, Any], path: Path) -> bool:
    curve = summary["sft"]["curve"]
    if not curve:
        return False
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    steps = [p["step"] for p in curve]
    ax.plot(steps, [p["pass"] for p in curve], "-o", color="black", label="validation (all)", markersize=3)
    families = sorted({f for p in curve for f in p["families"]})
    for i, family in enumerate(families):
        ax.plot(steps, [p["families"].get(family, float("nan")) for p in curve], "-", alpha=0.5, color=f"C{i % 10}",
                label=family)
    ax.axvline(summary["sft"]["selected_step"], color="red", linestyle=":", label="selected")
    ax.set(title="SFT: greedy validation pass@1", xlabel="SFT step", ylabel="pass@1")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    env = [(p["step"], p["env_ce_heldout"]) for p in curve if p.get("env_ce_heldout") is not None]
    if env:
        ax2.plot(*zip(*env), "-o", markersize=3)
    ax2.axvline(summary["sft"]["selected_step"], color="red", linestyle=":")
    ax2.set(title="SFT: held-out env CE (T=1)", xlabel="SFT step", ylabel="nats / token")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
