"""Plain sentences per compared arm: did it beat the reference arm (GRPO), and did it reproduce the paper?

The first answer is read off the Bonferroni-adjusted interval of the paired difference
(:mod:`echo_rl.report.arms`): above 0 is a yes, below 0 a no, across 0 no clear winner.

The paper's result, at whatever scale the runs were made, is three conditions for an ECHO arm at once:

    held-out env CE (families never trained on):   start / ECHO ≥ ENV_CE_FALL (2×)
                                                   |GRPO − start| / start < GRPO_ENV_CE_MOVE (10%)
    pass@1 on the reported split:                  the 95% interval of (ECHO − GRPO) above zero

where "start" is the starting policy's (the base arm's) value and each arm's is its seeds' mean.
"""

from __future__ import annotations

from statistics import mean

from echo_rl.report.arms import Arm, Comparison, Comparisons
from echo_rl.report.tables import interval_text

ENV_CE_FALL = 2.0
GRPO_ENV_CE_MOVE = 0.10


def _headline_comparison(arm: Arm, found: Comparisons, split: str) -> Comparison | None:
    """``arm`` against the reference on ``split`` in its headline mode, when that comparison was made."""
    mode = arm.headline_mode(split)
    return found.get(arm, split, mode) if mode else None


def verdict(arm: Arm, found: Comparisons, split: str) -> str:
    """One plain sentence: did ``arm`` beat the reference (GRPO) on ``split`` (headline mode), judged on the
    Bonferroni-adjusted interval of the paired difference."""
    item = _headline_comparison(arm, found, split)
    if item is None:
        return f"No comparison of {arm.label} with {found.reference.label} on the {split} split was run."
    diff, adj = item.diff, item.adjusted
    if adj.low > 0:
        head = f"Yes: {arm.label} beat {found.reference.label} at this scale"
    elif adj.high < 0:
        head = f"No: {arm.label} did worse than {found.reference.label} at this scale"
    else:
        head = f"No clear winner: {arm.label} did not beat {found.reference.label} beyond noise at this scale"
    ours, theirs = arm.score(split, item.mode), found.reference.score(split, item.mode)
    return (f"{head} — {split} pass@1 ({item.mode}, {ours.seeds} seed{'s' * (ours.seeds != 1)}) {interval_text(ours)} vs "
            f"{interval_text(theirs)}; difference {interval_text(diff, True)} points (95% paired bootstrap over seeds "
            f"and tasks), Bonferroni-adjusted over {found.count} comparisons [{100 * adj.low:+.1f}, {100 * adj.high:+.1f}].")


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def paper_criterion(arm: Arm, start: Arm, found: Comparisons, split: str) -> str | None:
    """Whether ``arm`` reproduced the paper's result (module docstring) against ``found``'s reference, from the
    starting policy ``start``; None when a number it needs is missing."""
    item = _headline_comparison(arm, found, split)
    env_ce = [a.env_ce("heldout") for a in (start, arm, found.reference)]
    if item is None or not all(env_ce):
        return None
    before, ours, theirs = (mean(values) for values in env_ce)
    fall, change = before / ours, (theirs - before) / before
    checks = (fall >= ENV_CE_FALL, abs(change) < GRPO_ENV_CE_MOVE, item.diff.low > 0)
    return (f"The paper's result for {arm.label}: {'reproduced' if all(checks) else 'not reproduced'} at this scale — "
            f"held-out env CE {before:.2f} → {ours:.2f} ({fall:.2f}× lower; ≥ {ENV_CE_FALL:g}× asked: {_met(checks[0])}) "
            f"while {found.reference.label}'s moved to {theirs:.2f} ({100 * change:+.1f}%; under "
            f"{100 * GRPO_ENV_CE_MOVE:.0f}% asked: {_met(checks[1])}); {split} pass@1 difference "
            f"{interval_text(item.diff, True)} points (its 95% interval above zero asked: {_met(checks[2])}).")


def verdicts(arms: list[Arm], found: Comparisons | None, split: str) -> dict[str, str]:
    """Per compared arm (by name): its :func:`verdict`, and for an ECHO arm the :func:`paper_criterion` from
    the first untrained arm (the starting policy) when there is one."""
    if found is None:
        return {}
    start = next((a for a in arms if not a.runs), None)
    out = {}
    for arm in arms:
        if arm.runs and arm is not found.reference:
            criterion = paper_criterion(arm, start, found, split) if start and arm.algorithm == "echo" else None
            out[arm.name] = verdict(arm, found, split) + (f" {criterion}" if criterion else "")
    return out
