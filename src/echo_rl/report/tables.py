"""Side-by-side tables in the paper's layout: one column per policy, base → GRPO → ECHO, each score with
its interval and the number of infra-excluded episodes (never silently zeroed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from echo_rl.eval.summary import pass_value
from echo_rl.report.runs import RunData, mean_rollouts_kept

Table = tuple[list[str], list[list[str]]]
MODES = ("sampled", "greedy")
SPLITS = {"validation": "validation", "heldout": "held-out families"}


def score_cell(summary: dict[str, Any] | None, k: str = "1") -> str:
    """``54.9 [50.1, 59.3]`` in percent, plus ``· 2 infra-excluded (reason ×2)`` when any were excluded and
    ``· 3 tasks without tests not scored`` when some had no verifier (``n/a: no tests`` when none had one)."""
    unverified = (summary or {}).get("unverified")
    if not summary or k not in summary.get("pass", {}):
        return f"n/a: no tests ({unverified['tasks']} tasks)" if unverified else "—"
    score = summary["pass"][k]
    cell = f"{100 * score['value']:.1f} [{100 * score['low']:.1f}, {100 * score['high']:.1f}]"
    infra = summary.get("infra", {})
    if infra.get("excluded"):
        reasons = ", ".join(f"{reason} ×{count}" for reason, count in infra["reasons"].items())
        cell += f" · {infra['excluded']} infra-excluded ({reasons})"
    if unverified:
        cell += f" · {unverified['tasks']} tasks without tests not scored"
    return cell


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _summary(result: dict[str, Any] | None, split: str, mode: str) -> dict[str, Any] | None:
    return (result or {}).get("scores", {}).get(split, {}).get(mode)


def _efficiency(result: dict[str, Any] | None, key: str, fmt: str) -> str:
    for mode in MODES:
        summary = _summary(result, "validation", mode)
        if summary:
            return format(summary["efficiency"][key], fmt)
    return "—"


def validation_curve(run: RunData) -> list[tuple[int, float]]:
    """(step, validation pass@1) of every evaluation, sampled when available, else greedy."""
    points = []
    for result in run.evals:
        for mode in MODES:
            value = pass_value(_summary(result, "validation", mode))
            if value is not None:
                points.append((result["step"], value))
                break
    return points


def steps_to_best(run: RunData) -> int | None:
    curve = validation_curve(run)
    return max(curve, key=lambda point: (point[1], -point[0]))[0] if curve else None


def _columns(runs: list[RunData]) -> list[tuple[str, dict[str, Any] | None, RunData | None]]:
    # the starting policy as evaluated at step 0 of a training run (an evaluation-only run is its own column)
    base = next((run.base_eval() for run in runs if run.train and run.base_eval()), None)
    columns: list[tuple[str, dict[str, Any] | None, RunData | None]] = [("base", base, None)] if base else []
    return columns + [(run.label, run.final_eval(), run) for run in runs]


def comparison_table(runs: list[RunData], ks: list[str]) -> Table:
    """Rows: pass@k per split and mode, held-out env CE, efficiency, steps to best, alarms; one column per
    policy (the base policy first when some run evaluated its step 0)."""
    columns = _columns(runs)
    rows: list[list[str]] = []

    def row(name: str, cell: Callable[[dict[str, Any] | None, RunData | None], str]) -> None:
        cells = [cell(result, run) for _, result, run in columns]
        if any(c != "—" for c in cells):
            rows.append([name, *cells])

    for split, split_name in SPLITS.items():
        for mode in MODES:
            for k in ks:
                row(f"{split_name} pass@{k} ({mode})", lambda r, _, s=split, m=mode, k=k: score_cell(_summary(r, s, m), k))
    row("held-out env CE (nats/token, T=1)", lambda r, _: f"{r['env_ce']['value']:.3f}" if r and r.get("env_ce") else "—")
    row("timeout rate", lambda r, _: _efficiency(r, "timeout_rate", ".1%"))
    row("turns / episode", lambda r, _: _efficiency(r, "turns_mean", ".2f"))
    row("tokens / episode", lambda r, _: _efficiency(r, "tokens_mean", ".0f"))
    row("steps to best validation", lambda _, run: str(steps_to_best(run)) if run and run.evals else "—")
    row("collapse alarms", lambda _, run: str(len(run.alarms)) if run else "—")
    row("rollouts kept by the env filter (mean over steps)",
        lambda _, run: _share(mean_rollouts_kept(run.train) if run else None))
    return ["metric", *(name for name, _, _ in columns)], rows


def family_table(runs: list[RunData], split: str, mode: str) -> Table:
    """pass@1 per family of ``split`` (``mode`` decoding), one column per policy."""
    columns = _columns(runs)
    families = sorted(
        {family for _, result, _ in columns for family in (_summary(result, split, mode) or {}).get("families", {})}
    )
    rows = [
        [family, *(score_cell((_summary(result, split, mode) or {}).get("families", {}).get(family)) for _, result, _ in columns)]
        for family in families
    ]
    return ["family", *(name for name, _, _ in columns)], rows


def arrow_line(runs: list[RunData], split: str = "validation") -> str | None:
    """The paper's one-line form, e.g. ``validation pass@1: 34.2 → 54.9 → 63.7`` (base first)."""
    values = []
    for _, result, _ in _columns(runs):
        summary = next((_summary(result, split, mode) for mode in MODES if _summary(result, split, mode)), None)
        value = pass_value(summary)
        if value is None:
            return None
        values.append(f"{100 * value:.1f}")
    return f"{SPLITS[split]} pass@1: " + " → ".join(values) if values else None
