"""PNG plots over steps, every run overlaid (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from echo_rl.eval.summary import pass_value
from echo_rl.report.runs import RunData

Series = list[tuple[int, float]]


def train_series(run: RunData, key: str) -> Series:
    return [(r["step"], float(r[key])) for r in run.train if isinstance(r.get(key), int | float)]


def eval_series(run: RunData, value: Callable[[dict[str, Any]], float | None]) -> Series:
    points = []
    for result in run.evals:
        v = value(result)
        if v is not None:
            points.append((result["step"], float(v)))
    return points


def _pass1(split: str) -> Callable[[dict[str, Any]], float | None]:
    def value(result: dict[str, Any]) -> float | None:
        modes = result.get("scores", {}).get(split, {})
        return pass_value(modes.get("sampled") or modes.get("greedy"))

    return value


def _env_ce(result: dict[str, Any]) -> float | None:
    return result["env_ce"]["value"] if result.get("env_ce") else None


# name -> (title, y label, [(legend suffix, series getter)])
PLOTS: dict[str, tuple[str, str, list[tuple[str, Callable[[RunData], Series]]]]] = {
    "reward": ("Mean reward of training rollouts", "reward", [("", lambda r: train_series(r, "rollout/reward_mean"))]),
    "pass_at_1": (
        "pass@1",
        "pass@1",
        [
            ("validation", lambda r: eval_series(r, _pass1("validation"))),
            ("held-out families", lambda r: eval_series(r, _pass1("heldout"))),
            ("train rollouts", lambda r: train_series(r, "rollout/pass_rate")),
        ],
    ),
    "env_ce": (
        "Env-token cross-entropy",
        "nats / token",
        [("held-out (T=1)", lambda r: eval_series(r, _env_ce)), ("train rollouts", lambda r: train_series(r, "update/env_ce"))],
    ),
    "loss": (
        "Loss terms",
        "loss",
        [(key, lambda r, key=key: train_series(r, f"update/{key}")) for key in ("loss", "policy_loss", "env_loss")],
    ),
    "tokens": ("Tokens per episode", "tokens", [("", lambda r: train_series(r, "rollout/tokens_mean"))]),
    "turns": ("Turns per episode", "turns", [("", lambda r: train_series(r, "rollout/turns_mean"))]),
}


def plot_runs(runs: list[RunData], out: Path) -> dict[str, Path]:
    """Write one PNG per entry of :data:`PLOTS` that has data; return ``{name: path}``. Collapse alarms are
    marked as dotted vertical lines in the run's colour."""
    written = {}
    for name, (title, ylabel, lines) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        drawn = False
        for index, run in enumerate(runs):
            colour = f"C{index}"
            for style, (suffix, getter) in zip(("-", "--", ":"), lines):
                series = getter(run)
                if series:
                    steps, values = zip(*series)
                    label = f"{run.label} {suffix}".strip()
                    ax.plot(steps, values, style, color=colour, marker="o", markersize=3, label=label)
                    drawn = True
            for step in sorted({alarm["step"] for alarm in run.alarms}):
                ax.axvline(step, color=colour, linestyle=":", alpha=0.6)
        if drawn:
            ax.set(title=title, xlabel="step", ylabel=ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            written[name] = out / f"{name}.png"
            fig.savefig(written[name])
        plt.close(fig)
    return written
