"""Metric names of the step records (``metrics.jsonl``, TensorBoard, W&B): each prefixed by where it
comes from, so that sources merged into one record never overwrite each other.

    update/…     the optimizer update: the objective's terms (update/loss, update/policy_loss, update/env_ce,
                 update/entropy_action, update/action_tokens — the tokens trained on), gradient probes,
                 update/grad_norm, update/lr, update/optimizer_updates (RL and SFT)
    advantage/…  group counts of the advantages (advantage/groups, advantage/groups_dropped, …)
    policy/…     the policy term's row selection (policy/zero_signal, policy/overlong)
    filter/…     env-target filter shares (filter/total, filter/rollouts_kept, …)
    rollout/…    the step's rollouts (rollout/pass_rate, rollout/reward_mean, rollout/episode_length,
                 rollout/action_tokens — the tokens sampled, rollout/infra_excluded, rollout/refill_draws, …)
    time/…       wall times and throughput (time/rollout_s, time/step_s, time/tokens_per_s)
    alarm/…      collapse alarms raised this step (alarm/<signal>)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def prefixed(source: str, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` with every key as ``source/key``."""
    return {f"{source}/{key}": value for key, value in metrics.items()}


def merged(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """One record of ``parts`` (each already named by its source); a key two parts hold is a ValueError,
    never a silent overwrite."""
    out: dict[str, Any] = {}
    for part in parts:
        clash = out.keys() & part.keys()
        if clash:
            raise ValueError(f"metric names written by two sources: {', '.join(sorted(clash))}")
        out |= part
    return out
