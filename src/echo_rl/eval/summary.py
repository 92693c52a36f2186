"""Summaries of a set of episodes: pass@k per family with intervals, infra exclusions, efficiency.

An ``infra_error`` episode is never a sample: it is left out of every denominator and counted, with its
reason, under ``infra`` next to the scores it was left out of (failure-modes issue, item 1). Nor is an
``unverified`` one (a task without ``tests/test.sh``): pass@k is not available for such tasks, so they are
left out of it and counted under ``unverified``; with no verified episode at all, ``pass`` is empty —
absent, never 0. Efficiency figures cover every valid episode.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from echo_rl.eval.stats import score_pass_at_k
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.roles import Role


def infra_summary(episodes: Sequence[Trajectory]) -> dict[str, Any]:
    """``{"excluded": count, "reasons": {reason: count}}`` of the infra_error episodes."""
    reasons = Counter(t.verifier_reason or t.stop_reason for t in episodes if not t.valid)
    return {"excluded": sum(reasons.values()), "reasons": dict(reasons)}


UNVERIFIED_NOTE = "no tests/test.sh: pass@k is not available for these tasks"


def pass_value(summary: dict[str, Any] | None, k: str = "1") -> float | None:
    """The pass@k value of a summary; None when it has none (no summary, or no verified episode)."""
    score = (summary or {}).get("pass", {}).get(k)
    return None if score is None else score["value"]


def pass_scores(
    episodes: Sequence[Trajectory], ks: Sequence[int], confidence: float = 0.95, bootstrap_samples: int = 1000
) -> dict[str, Any]:
    """pass@k for each k over the verified episodes, grouped by task (``{}`` without any), plus the infra
    exclusions and, when some valid episodes had no verifier, ``unverified`` (episodes, tasks, note)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in episodes:
        if t.verified:
            counts[t.task_id][0] += 1
            counts[t.task_id][1] += int(t.outcome == "solved")
    per_task = {task: (n, c) for task, (n, c) in counts.items()}
    unverified = [t for t in episodes if t.valid and not t.verified]
    summary: dict[str, Any] = {
        "episodes": len(episodes),
        "valid": sum(t.valid for t in episodes),
        "infra": infra_summary(episodes),
        "pass": {str(k): score_pass_at_k(per_task, k, confidence, bootstrap_samples).to_dict() for k in ks}
        if per_task
        else {},
    }
    if unverified:
        tasks = len({t.task_id for t in unverified})
        summary["unverified"] = {"episodes": len(unverified), "tasks": tasks, "note": UNVERIFIED_NOTE}
    return summary


def efficiency(episodes: Sequence[Trajectory]) -> dict[str, Any]:
    """Timeout rate (episodes ended by the agent timeout), share of episodes with a timed-out command,
    mean turns, total and action tokens per episode, and stop-reason counts, over valid episodes."""
    valid = [t for t in episodes if t.valid]
    n = max(len(valid), 1)
    return {
        "timeout_rate": sum(t.stop_reason == "agent_timeout" for t in valid) / n,
        "command_timeout_rate": sum(any(turn.timed_out for turn in t.turns) for t in valid) / n,
        "turns_mean": sum(len(t.turns) for t in valid) / n,
        "tokens_mean": sum(len(t.token_ids) for t in valid) / n,
        "action_tokens_mean": sum(sum(r == Role.ACTION for r in t.roles) for t in valid) / n,
        "stop_reasons": dict(Counter(t.stop_reason for t in valid)),
    }


def summarize_episodes(
    episodes: Sequence[Trajectory], ks: Sequence[int], confidence: float = 0.95, bootstrap_samples: int = 1000
) -> dict[str, Any]:
    """Overall and per-family pass@k (with exclusions) and the efficiency figures of ``episodes``."""
    by_family: dict[str, list[Trajectory]] = defaultdict(list)
    for t in episodes:
        by_family[t.family or "-"].append(t)
    summary = pass_scores(episodes, ks, confidence, bootstrap_samples)
    summary["families"] = {
        family: pass_scores(group, ks, confidence, bootstrap_samples) for family, group in sorted(by_family.items())
    }
    summary["efficiency"] = efficiency(episodes)
    return summary
