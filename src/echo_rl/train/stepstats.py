"""What one RL step's rollouts look like, summarised per rank as sums and merged across ranks.

Only these small dicts cross ranks (never the token ids). Infra errors are counted with their reasons
and kept out of every rate (issue 10.1): ``pass_rate`` and ``reward_mean`` are over the rollouts a
verifier judged, and absent (not 0) from a step without any — verifier-free training (env_only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from echo_rl.rollout.trajectory import Trajectory
from echo_rl.roles import Role

_COUNTERS = ("infra_reasons", "stop_reasons")


def distinct_command_share(group: Sequence[Trajectory]) -> float:
    """Distinct commands / commands issued over a group's rollouts (0 when none was issued)."""
    commands = [turn.command for t in group for turn in t.turns if turn.command is not None]
    return len(set(commands)) / len(commands) if commands else 0.0


def rollout_stats(trajectories: Sequence[Trajectory], group_size: int) -> dict[str, Any]:
    """Sums over this rank's rollouts (consecutive groups of ``group_size``)."""
    valid = [t for t in trajectories if t.valid]
    verified = [t for t in valid if t.verified]
    groups = [
        [t for t in trajectories[i : i + group_size] if t.valid] for i in range(0, len(trajectories), group_size)
    ]
    groups = [g for g in groups if g]
    return {
        "episodes": len(trajectories),
        "valid": len(valid),
        "verified": len(verified),
        "solved": sum(t.outcome == "solved" for t in verified),
        "reward_sum": sum(t.reward or 0.0 for t in verified),
        "turns_sum": sum(len(t.turns) for t in valid),
        "tokens_sum": sum(len(t.token_ids) for t in valid),
        "action_tokens_sum": sum(sum(r == Role.ACTION for r in t.roles) for t in trajectories),
        "valid_groups": len(groups),
        "distinct_share_sum": sum(distinct_command_share(g) for g in groups),
        "infra_reasons": dict(Counter(t.verifier_reason or t.stop_reason for t in trajectories if not t.valid)),
        "stop_reasons": dict(Counter(t.stop_reason for t in valid)),
    }


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sum the numbers and the counters of several :func:`rollout_stats`."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key in _COUNTERS:
                merged[key] = dict(Counter(merged.get(key, {})) + Counter(value))
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def step_metrics(stats: dict[str, Any]) -> dict[str, Any]:
    """Rates and means of merged stats: reward_mean and pass_rate (only when some rollout was verified),
    turns_mean (= episode_length, a collapse signal), tokens_mean, distinct_commands, infra_excluded with
    infra_reasons, stop_reasons, action_tokens."""
    valid = max(stats["valid"], 1)
    turns = stats["turns_sum"] / valid if stats["valid"] else None
    verified = stats["verified"]
    rewards = {}
    if verified:
        rewards = {"reward_mean": stats["reward_sum"] / verified, "pass_rate": stats["solved"] / verified}
    return {
        "episodes": stats["episodes"],
        **rewards,
        "turns_mean": turns,
        "episode_length": turns,
        "tokens_mean": stats["tokens_sum"] / valid,
        "action_tokens": stats["action_tokens_sum"],
        "distinct_commands": stats["distinct_share_sum"] / stats["valid_groups"] if stats["valid_groups"] else None,
        "infra_excluded": stats["episodes"] - stats["valid"],
        "infra_reasons": stats["infra_reasons"],
        "stop_reasons": stats["stop_reasons"],
    }
