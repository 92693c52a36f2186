"""What the report's figures show, as data (drawn by :mod:`echo_rl.report.plots`; tests read this).

Curves are per arm: at each step the mean over the arm's seeds, with a band from the lowest to the highest
seed (one legend entry per arm, never per run); dotted verticals mark collapse alarms. GRPO is drawn in black and thicker; every arm has its own
colour. Panels of one figure share the legend. Reference lines carry their own label on the axes: the
base policy, and on env-CE panels the uniform guess ln|V| (a model that knows nothing about the
terminal's output scores this; the env term is meant to take the policy below it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from echo_rl.eval.results import EvalResult
from echo_rl.report.arms import SPLITS, Arm, cells
from echo_rl.report.runs import RunData

Series = list[tuple[int, float]]
STRONG = "black"  # GRPO, the reference arm
BASE = "0.45"     # the starting policy's reference line
PALETTE = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9"]  # tab10 without its grey


@dataclass(frozen=True)
class Line:
    label: str
    steps: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    colour: str
    strong: bool = False
    alarms: tuple[int, ...] = ()  # steps at which a seed's collapse alarm fired


@dataclass(frozen=True)
class Reference:
    label: str
    value: float
    colour: str = BASE


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    panels: list[Panel]
    xlabel: str = "step"

    @property
    def legend(self) -> list[str]:
        """The legend's entries: each line label once (references are labelled on the axes)."""
        return list(dict.fromkeys(line.label for panel in self.panels for line in panel.lines))


@dataclass(frozen=True)
class Bars:
    """Final pass@1 per arm (rows of ``values``: value, low, high or None) for each (split, mode) group."""

    name: str
    title: str
    groups: list[str]
    arms: list[tuple[str, str, list[tuple[float, float, float] | None]]]  # label, colour, per group


def colours(arms: list[Arm]) -> dict[str, str]:
    """A distinct colour per arm label: GRPO black, the base policy grey, the others from tab10 without grey,
    tab20 past nine, then evenly spaced hues of ``turbo``: never two arms alike."""
    import matplotlib

    others = [a.label for a in arms if a.algorithm != "grpo" and a.runs]
    if len(others) <= len(PALETTE):
        palette = PALETTE
    else:
        cmap = matplotlib.colormaps["tab20" if len(others) <= 20 else "turbo"]
        palette = [matplotlib.colors.to_hex(cmap(i / max(len(others) - 1, 1) if len(others) > 20 else i))
                   for i in range(len(others))]
    out = dict(zip(others, palette))
    out |= {a.label: STRONG for a in arms if a.algorithm == "grpo" and a.runs}
    return out | {a.label: BASE for a in arms if not a.runs}


def train_series(run: RunData, key: str) -> Series:
    return [(r["step"], float(r[key])) for r in run.train if isinstance(r.get(key), int | float)]


def eval_series(run: RunData, value: Callable[[EvalResult], float | None]) -> Series:
    return [(r.step, float(v)) for r in run.evals if (v := value(r)) is not None]


def seed_band(series: list[Series]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps (any seed's) and, at each, the mean, lowest and highest value over the seeds that have it."""
    by_step: dict[int, list[float]] = {}
    for points in series:
        for step, value in points:
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    return (steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], [min(by_step[s]) for s in steps],
            [max(by_step[s]) for s in steps])


def panel(arms: list[Arm], palette: dict[str, str], title: str, ylabel: str,
          series: Callable[[RunData], Series], references: Sequence[Reference] = ()) -> Panel:
    lines = []
    for arm in arms:
        found = [s for s in (series(run) for run in arm.runs) if s]
        if found:
            steps, mean, low, high = seed_band(found)
            alarms = tuple(sorted({alarm["step"] for run in arm.runs for alarm in run.alarms}))
            lines.append(Line(arm.label, steps, mean, low, high, palette[arm.label], arm.algorithm == "grpo", alarms))
    return Panel(title, ylabel, lines, list(references))


def uniform_guess(arms: list[Arm]) -> Reference | None:
    """ln|V| of the model's output vocabulary, when some held-out env CE recorded |V|."""
    sizes = [r.env_ce.vocab_size for a in arms for r in [*a.finals, *(e for run in a.runs for e in run.evals)]
             if r.env_ce and r.env_ce.vocab_size]
    return Reference(f"uniform guess ln|V| = ln {sizes[0]} = {math.log(sizes[0]):.2f}", math.log(sizes[0]),
                     "tab:red") if sizes else None


def curve_figures(arms: list[Arm], base: EvalResult | None = None) -> list[Figure]:
    """pass@1, env CE, reward, loss terms, tokens and turns over steps (module docstring)."""
    trained = [a for a in arms if a.runs]
    palette = colours(arms)

    def base_ref(value: float | None) -> list[Reference]:
        return [Reference(f"base {value:.3g}", value)] if value is not None else []

    uniform = [u] if (u := uniform_guess(arms)) else []
    base_ce = base.env_ce.value if base and base.env_ce else None
    figures = [
        Figure("pass_at_1", "pass@1 (seed mean, band: range over seeds)", [
            panel(trained, palette, f"{SPLITS[s]} (eval)", "pass@1", lambda r, s=s: eval_series(r, lambda e: e.pass1(s)),
                  base_ref(base.pass1(s) if base else None)) for s in ("validation", "heldout")]
            + [panel(trained, palette, "train rollouts", "pass rate", lambda r: train_series(r, "rollout/pass_rate"))]),
        Figure("env_ce", "Env-token cross-entropy (nats/token)", [
            panel(trained, palette, "held-out transcripts (T=1)", "nats / token",
                  lambda r: eval_series(r, lambda e: e.env_ce.value if e.env_ce else None), [*uniform, *base_ref(base_ce)]),
            panel(trained, palette, "train rollouts", "nats / token", lambda r: train_series(r, "update/env_ce"), uniform)]),
        Figure("reward", "Mean reward of training rollouts", [
            panel(trained, palette, "reward", "reward", lambda r: train_series(r, "rollout/reward_mean"))]),
        Figure("loss", "Loss terms", [
            panel(trained, palette, key, "loss", lambda r, key=key: train_series(r, f"update/{key}"))
            for key in ("loss", "policy_loss", "env_loss")]),
        Figure("tokens", "Tokens per episode", [panel(trained, palette, "tokens", "tokens",
                                                      lambda r: train_series(r, "rollout/tokens_mean"))]),
        Figure("turns", "Turns per episode", [panel(trained, palette, "turns", "turns",
                                                    lambda r: train_series(r, "rollout/turns_mean"))]),
    ]
    return [replace(f, panels=[p for p in f.panels if p.lines]) for f in figures]


def final_bars(arms: list[Arm], splits: list[str]) -> Bars:
    """Each arm's final pass@1 (hierarchical bootstrap interval) on every evaluated (split, mode)."""
    grid = cells(arms, splits)
    palette = colours(arms)
    rows = []
    for arm in arms:
        scores = [arm.score(s, m) for s, m in grid]
        rows.append((arm.label, palette[arm.label], [(x.value, x.low, x.high) if x else None for x in scores]))
    return Bars("final_pass", "Final pass@1, 95% intervals (bootstrap over seeds, then tasks; unadjusted)",
                [f"{SPLITS.get(s, s)}\n{m}" for s, m in grid], rows)
