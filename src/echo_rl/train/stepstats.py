"""What one RL step's rollouts look like, summarised per rank and merged across ranks.

Only these small sums cross ranks (never the token ids): the episode counts of
:class:`echo_rl.eval.summary.EpisodeCounts` (the one episode summary) plus the GRPO groups' command
diversity. Infra errors are counted with their reasons and kept out of every rate (issue 10.1):
``pass_rate`` and ``reward_mean`` are over the rollouts a verifier judged, and absent (not 0) from a step
without any — verifier-free training (env_only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from echo_rl.eval.summary import EpisodeCounts
from echo_rl.rollout.trajectory import Trajectory


def distinct_command_share(group: Sequence[Trajectory]) -> float:
    """Distinct commands / commands issued over a group's rollouts (0 when none was issued)."""
    commands = [turn.command for t in group for turn in t.turns if turn.command is not None]
    return len(set(commands)) / len(commands) if commands else 0.0


@dataclass
class RolloutStats:
    counts: EpisodeCounts = field(default_factory=EpisodeCounts)
    valid_groups: int = 0
    distinct_share_sum: float = 0.0

    def __add__(self, other: RolloutStats) -> RolloutStats:
        return RolloutStats(self.counts + other.counts, self.valid_groups + other.valid_groups,
                            self.distinct_share_sum + other.distinct_share_sum)


def rollout_stats(trajectories: Sequence[Trajectory], group_size: int) -> RolloutStats:
    """Sums over this rank's rollouts (consecutive groups of ``group_size``)."""
    groups = [
        [t for t in trajectories[i : i + group_size] if t.valid] for i in range(0, len(trajectories), group_size)
    ]
    groups = [g for g in groups if g]
    return RolloutStats(EpisodeCounts.of(trajectories), len(groups), sum(distinct_command_share(g) for g in groups))


def merge_stats(parts: Sequence[RolloutStats]) -> RolloutStats:
    """The sum of several :func:`rollout_stats`."""
    return sum(parts, RolloutStats())


def step_metrics(stats: RolloutStats) -> dict[str, Any]:
    """Rates and means of merged stats: reward_mean and pass_rate (only when some rollout was verified),
    turns_mean (= episode_length, a collapse signal), tokens_mean, distinct_commands, infra_excluded with
    infra_reasons, stop_reasons, action_tokens (of the valid rollouts)."""
    counts = stats.counts
    turns = counts.turns_sum / counts.valid if counts.valid else None
    rewards = {}
    if counts.verified:
        rewards = {"reward_mean": counts.reward_sum / counts.verified, "pass_rate": counts.solved / counts.verified}
    return {
        "episodes": counts.episodes,
        **rewards,
        "turns_mean": turns,
        "episode_length": turns,
        "tokens_mean": counts.tokens_sum / max(counts.valid, 1),
        "action_tokens": counts.action_tokens_sum,
        "distinct_commands": stats.distinct_share_sum / stats.valid_groups if stats.valid_groups else None,
        "infra_excluded": counts.episodes - counts.valid,
        "infra_reasons": dict(counts.infra_reasons),
        "stop_reasons": dict(counts.stop_reasons),
    }
