"""One plain sentence per compared arm: did it beat the reference arm (GRPO)?

The answer is read off the Bonferroni-adjusted interval of the paired difference (:mod:`echo_rl.report.arms`):
above 0 is a yes, below 0 a no, across 0 no clear winner.
"""

from __future__ import annotations

from echo_rl.report.arms import Arm, Comparisons
from echo_rl.report.tables import interval_text


def verdict(arm: Arm, found: Comparisons, split: str) -> str:
    """One plain sentence: did ``arm`` beat the reference (GRPO) on ``split`` (headline mode), judged on the
    Bonferroni-adjusted interval of the paired difference."""
    mode = arm.headline_mode(split)
    item = found.get(arm, split, mode) if mode else None
    if item is None:
        return f"No comparison of {arm.label} with {found.reference.label} on the {split} split was run."
    diff, adj = item.diff, item.adjusted
    if adj.low > 0:
        head = f"Yes: {arm.label} beat {found.reference.label} at this scale"
    elif adj.high < 0:
        head = f"No: {arm.label} did worse than {found.reference.label} at this scale"
    else:
        head = f"No clear winner: {arm.label} did not beat {found.reference.label} beyond noise at this scale"
    ours, theirs = arm.score(split, mode), found.reference.score(split, mode)
    return (f"{head} — {split} pass@1 ({mode}, {ours.seeds} seed{'s' * (ours.seeds != 1)}) {interval_text(ours)} vs "
            f"{interval_text(theirs)}; difference {interval_text(diff, True)} points (95% paired bootstrap over seeds "
            f"and tasks), Bonferroni-adjusted over {found.count} comparisons [{100 * adj.low:+.1f}, {100 * adj.high:+.1f}].")
