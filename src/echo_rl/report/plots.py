"""Drawing the report's figures (:mod:`echo_rl.report.figures`) as PNGs (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from echo_rl.eval.results import EvalResult
from echo_rl.report.arms import Arm
from echo_rl.report.figures import Bars, Figure, curve_figures, final_bars


def draw(figure: Figure, path: Path) -> None:
    """One subplot per panel; seed means as lines, the seeds' range as a band, references labelled on the
    axes, one legend outside the axes (each arm once)."""
    n = len(figure.panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 2.2, 3.4), dpi=100, squeeze=False, layout="constrained")
    handles = {}
    for ax, panel in zip(axes[0], figure.panels):
        for line in panel.lines:
            (handle,) = ax.plot(line.steps, line.mean, "-o", color=line.colour, markersize=3,
                                linewidth=2.4 if line.strong else 1.4, zorder=3 if line.strong else 2)
            if line.low != line.high:
                ax.fill_between(line.steps, line.low, line.high, color=line.colour, alpha=0.15, linewidth=0)
            for step in line.alarms:
                ax.axvline(step, color=line.colour, linestyle=":", alpha=0.6)
            handles.setdefault(line.label, handle)
        for ref in panel.references:
            ax.axhline(ref.value, color=ref.colour, linestyle="--", linewidth=1)
            ax.annotate(ref.label, (0.01, ref.value), xycoords=("axes fraction", "data"), fontsize=7,
                        color=ref.colour, va="bottom")
        ax.set(title=panel.title, xlabel=figure.xlabel, ylabel=panel.ylabel)
        ax.grid(alpha=0.3)
    fig.suptitle(figure.title, fontsize=10)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7)
    fig.savefig(path)
    plt.close(fig)


def draw_bars(bars: Bars, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 3.8), dpi=100, layout="constrained")
    width = 0.8 / max(len(bars.arms), 1)
    for i, (label, colour, values) in enumerate(bars.arms):
        drawn = [(j, v) for j, v in enumerate(values) if v is not None]
        if drawn:
            xs = [j + i * width for j, _ in drawn]
            ys = [100 * v for _, (v, _, _) in drawn]
            err = [[100 * (v - lo) for _, (v, lo, _) in drawn], [100 * (hi - v) for _, (v, _, hi) in drawn]]
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=label, color=colour)
    ax.set_xticks([j + width * (len(bars.arms) - 1) / 2 for j in range(len(bars.groups))])
    ax.set_xticklabels(bars.groups, fontsize=8)
    ax.set(ylabel="pass@1 (%)", title=bars.title)
    ax.title.set_fontsize(9)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        fig.legend(loc="outside right upper", fontsize=7)
    fig.savefig(path)
    plt.close(fig)


def plot_arms(arms: list[Arm], splits: list[str], out: Path, base: EvalResult | None = None) -> dict[str, Path]:
    """Write ``final_pass.png`` and every curve figure that has data into ``out``; return ``{name: path}``."""
    written = {}
    bars = final_bars(arms, splits)
    if bars.groups:
        written[bars.name] = out / f"{bars.name}.png"
        draw_bars(bars, written[bars.name])
    for figure in curve_figures(arms, base):
        if figure.panels:
            written[figure.name] = out / f"{figure.name}.png"
            draw(figure, written[figure.name])
    return written
