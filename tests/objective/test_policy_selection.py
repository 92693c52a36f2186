"""Which rollouts and ratios the policy term uses (issue 16.6): GSPO's sequence-level ratio, dynamic
sampling (uninformative groups leave the policy term, not the env term) and the overlong filter, each
against a hand-computed case."""

from __future__ import annotations

import math

import pytest
import torch
from objective_helpers import PAD, hand_batch, standard_trajectories

from echo_rl.objective.batch import collate
from echo_rl.config import ObjectiveConfig
from echo_rl.objective import compute_advantages, env_term, group_ids_of, policy_rows, policy_term


def test_sequence_ratio_is_clipped_per_sequence():
    """Row 0: log-ratios (ln 2, 0) → ρ_s = √2 > 1.2: the whole sequence is clipped (no gradient; token
    level would still pass token 1's gradient). Row 1: (ln 1.5, −ln 1.5) → ρ_s = 1: not clipped though
    token 0 alone (ρ = 1.5) would be; each token's gradient is −A·ρ_s/|A_s| / |S| = −0.25."""
    cfg = ObjectiveConfig(ratio_level="sequence", clip_eps_low=0.2, clip_eps_high=0.2)
    logprobs = torch.zeros(2, 3, requires_grad=True)
    sampled = torch.tensor([[-math.log(2), 0.0, 0.0], [-math.log(1.5), math.log(1.5), 0.0]])
    batch = hand_batch([[1, 1, 0], [1, 1, 0]], [1.0, 1.0], sampled)
    loss, metrics = policy_term(logprobs, batch, cfg)
    loss.backward()
    assert loss.item() == pytest.approx((-1.2 - 1.0) / 2)
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.0, 0.0, 0.0], [-0.25, -0.25, 0.0]]))
    assert metrics["clip_frac_high"] == 0.5  # the two tokens of the clipped sequence
    token_level, _ = policy_term(logprobs, batch, ObjectiveConfig())
    assert token_level.item() != pytest.approx(loss.item())


def _selected(trajs, cfg):
    gids = group_ids_of(trajs)
    advantages, _ = compute_advantages([t.reward for t in trajs], gids, [t.valid for t in trajs])
    rows, stats = policy_rows(trajs, advantages, gids, cfg)
    return collate(trajs, advantages, cfg, PAD, group_ids=gids, policy_rows=rows), stats


DRIFT = 0.03  # log π_θ − log π_old = DRIFT·s on row s (≤ 0.15: inside the clip)


def _drifted(batch):
    """Log-probs DRIFT·s above the sampler's on row s: the seq_mean loss is −(1/|S|) Σ_s A_s·e^(DRIFT·s)."""
    rows = torch.arange(len(batch), dtype=torch.float32)[:, None]
    return (batch.sampling_logprobs + DRIFT * rows * batch.action_mask).requires_grad_()


def _hand_loss(batch, rows: list[int]) -> float:
    return -sum(float(batch.advantages[s]) * math.exp(DRIFT * s) for s in rows) / len(rows)


def test_dynamic_sampling_drops_zero_signal_groups_from_the_policy_term_only():
    """Group b all failed (no signal): without dynamic sampling it dilutes the policy term (denominator 6),
    with it the policy term is group a's alone (denominator 3); the env term is the same 6-row term."""
    trajs = standard_trajectories()
    for traj in trajs[3:]:
        traj.reward = 0.0
    off, _ = _selected(trajs, ObjectiveConfig())
    on, stats = _selected(trajs, ObjectiveConfig(dynamic_sampling={"enabled": True}))
    assert on.policy_rows.tolist() == [True] * 3 + [False] * 3 and stats["policy/zero_signal"] == 3
    assert (on.n_seqs, on.n_policy_seqs, off.n_policy_seqs) == (6, 3, 6)
    assert on.n_action_tokens == float(on.action_mask[:3].sum())
    on_loss, on_metrics = policy_term(_drifted(on), on, ObjectiveConfig())
    off_loss, _ = policy_term(_drifted(off), off, ObjectiveConfig())
    assert on_loss.item() == pytest.approx(_hand_loss(on, [0, 1, 2]), rel=1e-3)
    assert off_loss.item() == pytest.approx(_hand_loss(on, [0, 1, 2]) / 2, rel=1e-3)  # b's A = 0, 6 in the mean
    assert on_metrics["policy_tokens"] == on.n_action_tokens
    nll = torch.rand(on.input_ids.shape)
    assert env_term(-nll, on, ObjectiveConfig().env)[0].item() == env_term(-nll, off, ObjectiveConfig().env)[0].item()


@pytest.mark.parametrize(
    ("mode", "dropped"), [("off", []), ("truncated", [1, 2]), ("truncated_or_max_turns", [1, 2, 4])]
)
def test_overlong_filter_drops_truncated_rollouts_from_the_policy_term(mode, dropped):
    """Rollouts cut by max_turn_tokens / max_context_tokens (and max_turns in the second mode) leave the
    policy term; the advantages of the group (and so the others') are computed with them."""
    trajs = standard_trajectories()
    for i, stop in ((1, "max_turn_tokens"), (2, "max_context_tokens"), (4, "max_turns"), (5, "agent_timeout")):
        trajs[i].stop_reason = stop
    batch, stats = _selected(trajs, ObjectiveConfig(overlong_filter=mode))
    plain, _ = _selected(trajs, ObjectiveConfig())
    kept = [i for i in range(6) if i not in dropped]
    assert batch.policy_rows.tolist() == [i in kept for i in range(6)] and stats["policy/overlong"] == len(dropped)
    torch.testing.assert_close(batch.advantages, plain.advantages)
    loss, _ = policy_term(_drifted(batch), batch, ObjectiveConfig())
    assert loss.item() == pytest.approx(_hand_loss(batch, kept), rel=1e-3)
    assert batch.n_seqs == 6
