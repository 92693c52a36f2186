"""Side-by-side tables in the paper's layout: one column per arm (method, its seeds together), base → GRPO →
ECHO; each score with its interval, the seeds' own values and the number of infra-excluded episodes (never
silently zeroed); and the paired differences against the reference arm with the multiplicity note."""

from __future__ import annotations

from collections.abc import Callable
from statistics import mean

from echo_rl.eval.bootstrap import Interval
from echo_rl.eval.results import Summary
from echo_rl.report.arms import SPLITS, Arm, Comparison, Comparisons, cells, mean_or_none

Table = tuple[list[str], list[list[str]]]
WIDE = 6  # arms beyond which a table lists one arm per row


def interval_text(score: Interval | None, points: bool = False) -> str:
    """``54.9 [50.1, 59.3]`` in percent (``+4.0 [-1.2, +9.1]`` as a difference, ``points``)."""
    if score is None:
        return "—"
    sign = "+" if points else ""
    return f"{100 * score.value:{sign}.1f} [{100 * score.low:{sign}.1f}, {100 * score.high:{sign}.1f}]"


def _exclusions(summaries: list[Summary]) -> str:
    excluded = sum(s.infra.excluded for s in summaries)
    text = ""
    if excluded:
        reasons: dict[str, int] = {}
        for s in summaries:
            for reason, count in s.infra.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
        text += f" · {excluded} infra-excluded ({', '.join(f'{r} ×{c}' for r, c in reasons.items())})"
    gaps = [s.unverified for s in summaries if s.unverified]
    if gaps:
        text += f" · {gaps[0].tasks} tasks without tests not scored"
    return text


def score_cell(arm: Arm, split: str, mode: str, k: int = 1) -> str:
    """pass@k of ``arm`` in percent with its interval (k = 1: hierarchical bootstrap over seeds and tasks;
    with several seeds, each seed's value beside it), its exclusions; ``n/a: no tests`` where none was scored."""
    summaries = [s for r in arm.finals if (s := r.summary(split, mode)) is not None]
    if not summaries:
        return "—"
    if not any(s.pass_at(k) for s in summaries):
        gap = summaries[0].unverified
        return f"n/a: no tests ({gap.tasks} tasks)" if gap else "—"
    if k == 1:
        score = arm.score(split, mode)
        cell = interval_text(score)
        if score is not None and score.seeds > 1:
            cell += f" (seeds {', '.join(f'{100 * v:.1f}' for v in score.per_seed)}; sd {100 * score.seed_sd:.1f})"
    else:
        first = next(s.pass_at(k) for s in summaries if s.pass_at(k))
        cell = interval_text(Interval(first.value, first.low, first.high, first.tasks, 1))
        cell += " (first seed)" if len(summaries) > 1 else ""
    return cell + _exclusions(summaries)


def per_seed(values: list, fmt: str = "") -> str:
    """Comma-separated per-seed values (— for a missing one); — for none at all."""
    if not values or all(v is None for v in values):
        return "—"
    return ", ".join("—" if v is None else format(v, fmt) for v in values)


def _mean_cell(values: list[float], fmt: str) -> str:
    if not values:
        return "—"
    text = format(mean(values), fmt)
    return text + (f" ({per_seed(values, fmt)})" if len(values) > 1 else "")


def comparison_table(arms: list[Arm], splits: list[str], ks: tuple[int, ...] = (1,), primary: str = "validation") -> Table:
    """Rows: pass@k per evaluated split and mode, held-out env CE (all and copyable tokens), efficiency (on
    ``primary``), steps to best validation, alarms, rollouts kept; one column per arm."""
    rows: list[list[str]] = []

    def row(name: str, cell: Callable[[Arm], str]) -> None:
        values = [cell(arm) for arm in arms]
        if any(v != "—" for v in values):
            rows.append([name, *values])

    for split, mode in cells(arms, splits):
        for k in ks:
            row(f"{SPLITS.get(split, split)} pass@{k} ({mode})", lambda a, s=split, m=mode, k=k: score_cell(a, s, m, k))
    row("held-out env CE (nats/token, T=1)", lambda a: _mean_cell(a.env_ce("heldout"), ".3f"))
    row("held-out env CE, copyable tokens (content the transcript showed)",
        lambda a: _mean_cell(a.env_ce("heldout", "copyable"), ".3f"))
    row("held-out env CE, unseen tasks of seen families (T=1)", lambda a: _mean_cell(a.env_ce("validation"), ".3f"))
    row("held-out env CE, unseen tasks of seen families, copyable tokens",
        lambda a: _mean_cell(a.env_ce("validation", "copyable"), ".3f"))
    for name, key, fmt in (("timeout rate", "timeout_rate", ".1%"), ("turns / episode", "turns_mean", ".2f"),
                           ("tokens / episode", "tokens_mean", ".0f"), ("episodes hitting a turn/token limit",
                                                                       "turn_limit_rate", ".1%")):
        row(name, lambda a, key=key, fmt=fmt: format(getattr(eff, key), fmt) if (eff := a.efficiency(primary)) else "—")
    row("steps to best validation", lambda a: per_seed(a.steps_to_best()))
    row("collapse alarms", lambda a: per_seed(a.alarms()) if a.runs else "—")
    row("rollouts kept by the env filter (mean over steps)", lambda a: per_seed(a.rollouts_kept(), ".0%"))
    return ["metric", *(arm.label for arm in arms)], rows


def transpose(table: Table) -> Table:
    """Arms as rows past :data:`WIDE` arms (a sweep), else ``table`` as it is."""
    header, rows = table
    if len(header) - 1 <= WIDE:
        return table
    return ["arm", *(r[0] for r in rows)], [list(col) for col in zip(*[header[1:], *(r[1:] for r in rows)])]


def family_table(arms: list[Arm], split: str, mode: str) -> Table:
    """pass@1 per family of ``split`` (``mode`` decoding), one column per arm (first seed)."""
    def family(arm: Arm, name: str) -> str:
        summary = next((s for r in arm.finals if (s := r.summary(split, mode))), None)
        score = summary.families.get(name).pass_at(1) if summary and name in summary.families else None
        return interval_text(Interval(score.value, score.low, score.high, score.tasks, 1)) if score else "—"

    names = sorted({f for arm in arms for r in arm.finals if (s := r.summary(split, mode)) for f in s.families})
    return ["family", *(arm.label for arm in arms)], [[f, *(family(arm, f) for arm in arms)] for f in names]


def difference_table(comparisons: Comparisons, splits: list[str]) -> Table:
    """One row per arm compared with the reference: Δ pass@1 per (split, mode), in points, unadjusted
    interval then Bonferroni-adjusted one."""
    grid = [(s, m) for s in splits for m in ("sampled", "greedy")
            if any((c.split, c.mode) == (s, m) for c in comparisons.items)]
    arms = list({id(c.arm): c.arm for c in comparisons.items}.values())
    header = [f"arm − {comparisons.reference.label}", *(f"Δ {SPLITS.get(s, s)} {m}" for s, m in grid)]
    rows = []
    for arm in arms:
        found = [comparisons.get(arm, s, m) for s, m in grid]
        rows.append([arm.label, *(_difference_cell(c) for c in found)])
    return header, rows


def _difference_cell(comparison: Comparison | None) -> str:
    if comparison is None:
        return "n/a"
    adjusted = comparison.adjusted
    return (f"{interval_text(comparison.diff, True)}; adjusted [{100 * adjusted.low:+.1f}, "
            f"{100 * adjusted.high:+.1f}]")


def arrow_line(arms: list[Arm], split: str = "validation") -> str | None:
    """The paper's one-line form, e.g. ``validation pass@1: 34.2 → 54.9 → 63.7`` (base first), each arm's
    headline mode (:meth:`~echo_rl.eval.results.EvalResult.headline`), seeds averaged."""
    values = []
    for arm in arms:
        value = mean_or_none([v for r in arm.finals if (v := r.pass1(split)) is not None])
        if value is None:
            return None
        values.append(f"{100 * value:.1f}")
    return f"{SPLITS.get(split, split)} pass@1: " + " → ".join(values) if values else None
