import math

import pytest
import torch
from objective_helpers import backward_grads, hand_batch, make_batch, standard_trajectories

from echo_rl.config import ObjectiveConfig
from echo_rl.objective import aggregate, batch_logprobs, compute_advantages, full_logits_logprobs, policy_term


def test_advantages_group_normalised_with_infra_errors_and_small_groups():
    rewards = [1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1]
    groups = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    valid = [True] * 7 + [False] + [True, True, False]
    advantages, stats = compute_advantages(rewards, groups, valid, std_norm=True)
    s = 0.5 * math.sqrt(3)  # 0.5 / unbiased std of (1, 0, 1, 0)
    expected = [s, -s, s, -s, 0, 0, 0, 0, -1 / math.sqrt(2), 1 / math.sqrt(2), 0]
    torch.testing.assert_close(advantages, torch.tensor(expected), atol=1e-5, rtol=0)
    assert stats == {
        "groups": 4.0,
        "groups_dropped": 1.0,  # group 2: one valid rollout
        "groups_zero_advantage": 1.0,  # group 1: all rewards equal
        "rollouts_excluded": 2.0,
        "reward_mean": pytest.approx(6 / 9),
    }
    centred, _ = compute_advantages(rewards, groups, valid, std_norm=False)
    torch.testing.assert_close(centred, torch.tensor([0.5, -0.5, 0.5, -0.5, 0, 0, 0, 0, -0.5, 0.5, 0]))


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("seq_mean", ((1 + 2 + 3) / 3 + 4 / 1 + 0) / 3),  # paper: mean over sequences of per-sequence means
        ("token_mean", (1 + 2 + 3 + 4) / 4),  # DAPO
        ("seq_sum_constant", (1 + 2 + 3 + 4) / (3 * 10)),  # Dr. GRPO, C = 10
    ],
)
def test_aggregation_modes_match_hand_computed_values(mode, expected):
    per_token = torch.tensor([[1.0, 2, 3, 9], [4, 9, 9, 9], [9, 9, 9, 9]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert aggregate(per_token, mask, mode, n_seqs=3, n_tokens=4, constant=10).item() == pytest.approx(expected)


def test_on_policy_gradient_is_advantage_weighted_logprob_gradient(model):
    """At ρ = 1 the clipped surrogate's gradient is −A·∇log π, aggregated (seq_mean)."""
    cfg = ObjectiveConfig(algorithm="grpo")
    batch = make_batch(standard_trajectories(), cfg)
    logprobs = batch_logprobs(model, batch, cfg).logprobs
    batch.sampling_logprobs = logprobs.detach() * batch.action_mask
    loss, metrics = policy_term(logprobs, batch, cfg)
    got = backward_grads(model, loss)
    reference = -batch.advantages[:, None] * batch_logprobs(model, batch, cfg).logprobs
    want = backward_grads(model, aggregate(reference, batch.action_mask.float(), "seq_mean", batch.n_seqs, 0, 1))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
    assert metrics["clip_frac_low"] == metrics["clip_frac_high"] == 0
    assert metrics["logprob_mismatch_max"] == 0 and metrics["approx_kl"] == 0


def test_clipping_by_sign_of_advantage_and_clip_fractions():
    """ρ = 2 with A > 0 and ρ = 0.5 with A < 0 take the clipped branch (no gradient); the others do not."""
    cfg = ObjectiveConfig(clip_eps_low=0.2, clip_eps_high=0.3)
    logprobs = torch.zeros(2, 3, requires_grad=True)
    sampled = torch.tensor([[-math.log(2), 0.0, 0.0], [math.log(2), 0.0, 0.0]])  # ρ = 2 / 0.5 on token 0
    batch = hand_batch([[1, 1, 0], [1, 1, 0]], [1.0, -1.0], sampled)
    loss, metrics = policy_term(logprobs, batch, cfg)
    loss.backward()
    # seq_mean: row 0 = (−1.3 − 1)/2, row 1 = (0.8 + 1)/2 (clipped values at the clipped tokens)
    assert loss.item() == pytest.approx(((-1.3 - 1) / 2 + (0.8 + 1) / 2) / 2)
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.0, -0.25, 0], [0, 0.25, 0]]))
    assert metrics["clip_frac_high"] == 0.25 and metrics["clip_frac_low"] == 0.25


def test_truncated_importance_sampling_bounds_weights_and_reports_mismatch(model):
    """A sampler 3 nats below the trainer on half the action tokens (π_train/π_sample = e³ ≈ 20): the
    mismatch is reported; with TIS (C = 2) the weights are min(e³, 2) and the gradient is −A·w·∇log π."""
    cfg = ObjectiveConfig(algorithm="grpo", tis_cap=2.0)
    batch = make_batch(standard_trajectories(), cfg)
    logprobs = batch_logprobs(model, batch, cfg).logprobs
    perturbed = batch.action_mask & (torch.arange(batch.action_mask.shape[1]) % 2 == 0)
    batch.sampling_logprobs = (logprobs.detach() - 3.0 * perturbed) * batch.action_mask
    _, metrics = policy_term(logprobs, batch, cfg)
    share = float(perturbed.sum() / batch.action_mask.sum())
    assert metrics["logprob_mismatch_max"] == pytest.approx(3.0, abs=1e-5)
    assert metrics["logprob_mismatch_mean"] == pytest.approx(3.0 * share, abs=1e-5)
    assert metrics["tis_truncated_frac"] == pytest.approx(share)
    assert metrics["tis_weight_mean"] == pytest.approx(2.0 * share + (1 - share), abs=1e-5)
    weight = torch.where(perturbed, 2.0, 1.0)
    reference = -batch.advantages[:, None] * weight * logprobs
    want = backward_grads(model, aggregate(reference, batch.action_mask.float(), "seq_mean", batch.n_seqs, 0, 1))
    got = backward_grads(model, policy_term(batch_logprobs(model, batch, cfg).logprobs, batch, cfg)[0])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


def test_float32_trainer_matches_full_logits_sampler_within_1e4(model):
    cfg = ObjectiveConfig(algorithm="grpo")
    batch = make_batch(standard_trajectories(), cfg, temperature=0.8)
    sampler = full_logits_logprobs(model, batch.input_ids, batch.attention_mask, temperature=0.8).logprobs
    batch.sampling_logprobs = sampler.detach() * batch.action_mask
    _, metrics = policy_term(batch_logprobs(model, batch, cfg).logprobs, batch, cfg)
    assert metrics["logprob_mismatch_max"] < 1e-4


def test_k3_kl_to_reference():
    cfg = ObjectiveConfig(kl_coef=0.1)
    logprobs = torch.full((1, 3), -1.0, requires_grad=True)
    batch = hand_batch([[1, 1, 0]], [0.0], sampled := torch.full((1, 3), -1.0))
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_term(logprobs, batch, cfg)
    batch.ref_logprobs = sampled - 1.0  # log π_ref − log π_θ = −1 on every token
    loss, metrics = policy_term(logprobs, batch, cfg)
    k3 = math.exp(-1) + 1 - 1
    assert metrics["kl_ref"] == pytest.approx(k3) and loss.item() == pytest.approx(0.1 * k3)
