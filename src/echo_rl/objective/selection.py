"""Which valid rollouts the policy term learns from (the env term learns from all of them).

Dynamic sampling (``objective.dynamic_sampling.enabled``, DAPO): a group is informative when some rollout
of it has a non-zero advantage — ≥ 2 valid rollouts whose rewards are not all equal. The rollouts of the
other groups carry no policy gradient but would still dilute the policy term's denominators (and add
their KL): they leave the policy term.

Overlong filter (``objective.overlong_filter``): an episode cut by a token limit — ``stop_reason``
``max_context_tokens`` or ``max_turn_tokens`` (``truncated``), and also ``max_turns``
(``truncated_or_max_turns``) — did not end by its own decision, so its reward says little about its
actions: it leaves the policy term. Its group's advantages are computed with it (the other rollouts'
advantages do not change). ``agent_timeout`` is a wall-clock limit, not a length limit: never filtered.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from echo_rl.config import ObjectiveConfig
from echo_rl.objective.grpo import compute_advantages
from echo_rl.rollout.trajectory import Trajectory

OVERLONG_STOPS = {
    "off": frozenset(),
    "truncated": frozenset({"max_context_tokens", "max_turn_tokens"}),
    "truncated_or_max_turns": frozenset({"max_context_tokens", "max_turn_tokens", "max_turns"}),
}


def informative_rows(advantages: Tensor, group_ids: Sequence[int] | Tensor) -> Tensor:
    """[B] bool: the rows whose group has a non-zero advantage (an informative group)."""
    group_ids = torch.as_tensor(group_ids, dtype=torch.long)
    nonzero = advantages != 0
    return torch.stack([nonzero[group_ids == g].any() for g in group_ids])


def informative_groups(trajectories: Sequence[Trajectory], group_size: int) -> list[bool]:
    """Per group of ``group_size`` consecutive rollouts: is it informative (module docstring)?"""
    gids = [i // group_size for i in range(len(trajectories))]
    advantages, _ = compute_advantages([t.reward for t in trajectories], gids, [t.valid for t in trajectories])
    return informative_rows(advantages, gids)[::group_size].tolist() if trajectories else []


def policy_rows(
    trajectories: Sequence[Trajectory], advantages: Tensor, group_ids: Sequence[int] | Tensor, cfg: ObjectiveConfig
) -> tuple[Tensor, dict[str, float]]:
    """[B] bool, the rows the policy term keeps (module docstring), and the rollouts each rule took out:
    ``policy/zero_signal`` (rows of uninformative groups) and ``policy/overlong`` (the overlong filter's,
    among the rest)."""
    keep = torch.ones(len(trajectories), dtype=torch.bool)
    if cfg.dynamic_sampling.enabled and len(trajectories):
        keep &= informative_rows(advantages, group_ids)
    zero_signal = int((~keep).sum())
    stops = OVERLONG_STOPS[cfg.overlong_filter]
    keep &= torch.tensor([traj.stop_reason not in stops for traj in trajectories], dtype=torch.bool)
    overlong = len(keep) - int(keep.sum()) - zero_signal
    return keep, {"policy/zero_signal": float(zero_signal), "policy/overlong": float(overlong)}
