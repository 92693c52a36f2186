"""The one summary of a set of episodes: sums (:class:`EpisodeCounts`, which ranks and steps add up) and the
scores built on them (:func:`summarize_episodes`: pass@k per family with intervals, infra exclusions,
efficiency) — evaluation, the training step's rollout metrics and the reports all read these.

An ``infra_error`` episode is never a sample: it is left out of every denominator and counted, with its
reason, under ``infra`` next to the scores it was left out of (failure-modes issue, item 1). Nor is an
``unverified`` one (a task without ``tests/test.sh``): pass@k is not available for such tasks, so they are
left out of it and counted under ``unverified``; with no verified episode at all, ``passes`` is empty —
absent, never 0. Efficiency figures cover every valid episode.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

from echo_rl.eval.results import Counts, Efficiency, Infra, Summary, Unverified
from echo_rl.eval.stats import score_pass_at_k
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.roles import Role

UNVERIFIED_NOTE = "no tests/test.sh: pass@k is not available for these tasks"


@dataclass
class EpisodeCounts:
    """Sums over episodes; ``a + b`` are the counts of both. Rates are over valid (non-infra) episodes,
    reward and success over verified ones."""

    episodes: int = 0
    valid: int = 0
    verified: int = 0
    solved: int = 0
    reward_sum: float = 0.0
    turns_sum: int = 0
    tokens_sum: int = 0
    action_tokens_sum: int = 0
    agent_timeouts: int = 0
    command_timeouts: int = 0
    infra_reasons: Counter[str] = field(default_factory=Counter)
    stop_reasons: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, episodes: Sequence[Trajectory]) -> EpisodeCounts:
        valid = [t for t in episodes if t.valid]
        verified = [t for t in valid if t.verified]
        return cls(
            episodes=len(episodes), valid=len(valid), verified=len(verified),
            solved=sum(t.outcome == "solved" for t in verified), reward_sum=sum(t.reward or 0.0 for t in verified),
            turns_sum=sum(len(t.turns) for t in valid), tokens_sum=sum(len(t.token_ids) for t in valid),
            action_tokens_sum=sum(sum(r == Role.ACTION for r in t.roles) for t in valid),
            agent_timeouts=sum(t.stop_reason == "agent_timeout" for t in valid),
            command_timeouts=sum(any(turn.timed_out for turn in t.turns) for t in valid),
            infra_reasons=Counter(t.verifier_reason or t.stop_reason for t in episodes if not t.valid),
            stop_reasons=Counter(t.stop_reason for t in valid),
        )

    def __add__(self, other: EpisodeCounts) -> EpisodeCounts:
        return EpisodeCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def infra(self) -> Infra:
        return Infra(sum(self.infra_reasons.values()), dict(self.infra_reasons))

    def efficiency(self) -> Efficiency:
        n = max(self.valid, 1)
        return Efficiency(
            timeout_rate=self.agent_timeouts / n, command_timeout_rate=self.command_timeouts / n,
            turns_mean=self.turns_sum / n, tokens_mean=self.tokens_sum / n,
            action_tokens_mean=self.action_tokens_sum / n, stop_reasons=dict(self.stop_reasons),
        )


def task_counts(episodes: Sequence[Trajectory]) -> Counts:
    """``{task: (verified samples n, solved c)}`` over the verified episodes."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in episodes:
        if t.verified:
            counts[t.task_id][0] += 1
            counts[t.task_id][1] += int(t.outcome == "solved")
    return {task: (n, c) for task, (n, c) in counts.items()}


def pass_scores(
    episodes: Sequence[Trajectory], ks: Sequence[int], confidence: float = 0.95, bootstrap_samples: int = 1000
) -> Summary:
    """pass@k for each k over the verified episodes, grouped by task (none without any), the per-task
    counts, the infra exclusions and, when some valid episodes had no verifier, ``unverified``."""
    counts = EpisodeCounts.of(episodes)
    per_task = task_counts(episodes)
    unverified = [t for t in episodes if t.valid and not t.verified]
    gap = Unverified(len(unverified), len({t.task_id for t in unverified}), UNVERIFIED_NOTE) if unverified else None
    passes = {k: score_pass_at_k(per_task, k, confidence, bootstrap_samples) for k in ks} if per_task else {}
    return Summary(counts.episodes, counts.valid, counts.infra(), passes, per_task, gap)


def summarize_episodes(
    episodes: Sequence[Trajectory], ks: Sequence[int], confidence: float = 0.95, bootstrap_samples: int = 1000
) -> Summary:
    """Overall and per-family pass@k (with exclusions) and the efficiency figures of ``episodes``."""
    by_family: dict[str, list[Trajectory]] = defaultdict(list)
    for t in episodes:
        by_family[t.family or "-"].append(t)
    overall = pass_scores(episodes, ks, confidence, bootstrap_samples)
    families = {name: pass_scores(group, ks, confidence, bootstrap_samples) for name, group in sorted(by_family.items())}
    return replace(overall, families=families, efficiency=EpisodeCounts.of(episodes).efficiency())
