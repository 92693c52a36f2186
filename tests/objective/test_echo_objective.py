import math

import pytest
import torch
from objective_helpers import backward_grads, hand_batch, make_batch, separate_reference, standard_trajectories, weights

from echo_rl.config import EnvLossConfig, LambdaSchedule, ObjectiveConfig
from echo_rl.objective import (
    TokenLogprobs,
    batch_logprobs,
    echo_loss,
    env_cross_entropy,
    frozen_logprobs,
    full_logits_logprobs,
    policy_term,
    scheduled_lambda,
)


@pytest.mark.parametrize("temperature_scaled", [True, False])
def test_echo_gradient_equals_grpo_gradient_plus_lambda_times_ce_gradient(model, temperature_scaled):
    cfg = ObjectiveConfig(env=EnvLossConfig(lam=0.05, temperature_scaled=temperature_scaled))
    batch = make_batch(standard_trajectories(), cfg, temperature=0.8)
    loss, metrics = echo_loss(model, batch, cfg, weights(cfg))
    got = backward_grads(model, loss)
    want_loss, want = separate_reference(model, batch, cfg, 0.05)
    assert loss.item() == pytest.approx(want_loss.item(), rel=1e-5)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert metrics["lambda"] == 0.05
    assert metrics["loss"] == pytest.approx(metrics["policy_loss"] + 0.05 * metrics["env_loss"], rel=1e-6)


def test_temperature_choice_changes_only_the_env_term(model):
    batch = make_batch(standard_trajectories(), temperature=0.5)
    raw_cfg = ObjectiveConfig(env=EnvLossConfig(temperature_scaled=False))
    scaled = echo_loss(model, batch, ObjectiveConfig(), weights(ObjectiveConfig()))[1]
    raw = echo_loss(model, batch, raw_cfg, weights(raw_cfg))[1]
    assert scaled["policy_loss"] == pytest.approx(raw["policy_loss"], rel=1e-6)
    nll = {t: -full_logits_logprobs(model, batch.input_ids, batch.attention_mask, t).logprobs for t in (0.5, 1.0)}
    for metrics, t in ((scaled, 0.5), (raw, 1.0)):
        want = (nll[t] * batch.env_mask).sum() / batch.env_mask.sum()
        assert metrics["env_ce"] == pytest.approx(want.item(), rel=1e-5)


def test_lambda_zero_is_grpo_bit_for_bit(model):
    batch = make_batch(standard_trajectories(), temperature=0.8)
    results = []
    for cfg, step in (
        (ObjectiveConfig(algorithm="grpo"), 3),
        (ObjectiveConfig(env=EnvLossConfig(lam=0.0)), 3),
        (ObjectiveConfig(env=EnvLossConfig(schedule=LambdaSchedule(warmup_steps=10))), 0),  # warm-up: λ(0) = 0
    ):
        loss, _ = echo_loss(model, batch, cfg, weights(cfg, step))
        results.append((loss.detach(), backward_grads(model, loss)))
    plain = policy_term(batch_logprobs(model, batch, ObjectiveConfig()).logprobs, batch, ObjectiveConfig())[0]
    results.append((plain.detach(), backward_grads(model, plain)))
    for loss, grads in results[1:]:
        assert torch.equal(loss, results[0][0])
        assert all(torch.equal(a, b) for a, b in zip(grads, results[0][1]))


@pytest.mark.parametrize(
    ("normalization", "expected"),
    [
        ("full_observation_tokens", ((1 + 2) / 3 + 3 / 1 + 0) / 3),  # Z = |O|: the warning token counts
        ("selected_tokens", ((1 + 2) / 2 + 3 / 1 + 0) / 3),  # Z = |O'|
        ("constant", ((1 + 2) / 10 + 3 / 10 + 0) / 3),  # Z = C
    ],
)
def test_env_normalisations_match_hand_computed_values(normalization, expected):
    cfg = ObjectiveConfig(env=EnvLossConfig(normalization=normalization, norm_constant=10))
    logprobs = torch.tensor([[0.0, -1, -2, -4], [0, -3, 0, 0], [0, 0, 0, 0]])
    batch = hand_batch(
        action_mask=torch.zeros(3, 4),
        advantages=[0.0, 0.0, 0.0],
        env_mask=[[0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]],
        warning_mask=[[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]],
    )
    loss, metrics = echo_loss(TokenLogprobs(logprobs, None), batch, cfg, weights(cfg))
    assert metrics["env_loss"] == pytest.approx(expected)
    assert loss.item() == pytest.approx(0.05 * expected)
    assert metrics["env_ce"] == pytest.approx(2.0) and metrics["warning_ce"] == pytest.approx(4.0)
    assert metrics["env_tokens"] == 3 and metrics["warning_tokens"] == 1


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        (LambdaSchedule(), 400, 0.1),
        (LambdaSchedule(kind="linear_decay", final=0.02, decay_steps=10), 5, 0.06),
        (LambdaSchedule(kind="linear_decay", final=0.02, decay_steps=10), 50, 0.02),
        (LambdaSchedule(kind="step_decay", every=10, factor=0.5), 25, 0.025),
        (LambdaSchedule(warmup_steps=4), 0, 0.0),
        (LambdaSchedule(warmup_steps=4), 1, 0.025),
        (LambdaSchedule(kind="step_decay", every=10, factor=0.5, warmup_steps=4), 12, 0.05),
    ],
)
def test_lambda_schedules(schedule, step, expected):
    assert scheduled_lambda(EnvLossConfig(lam=0.1, schedule=schedule), step) == pytest.approx(expected)


def test_env_term_trains_zero_advantage_and_failed_rollouts(model):
    trajs = standard_trajectories()
    for traj in trajs:
        traj.reward = 0.0  # every group fails: GRPO alone has no gradient
    batch = make_batch(trajs)
    assert (batch.advantages == 0).all()
    grpo_loss, _ = echo_loss(model, batch, ObjectiveConfig(algorithm="grpo"), (1.0, 0.0))
    assert all((g == 0).all() for g in backward_grads(model, grpo_loss))
    loss, metrics = echo_loss(model, batch, ObjectiveConfig(), weights(ObjectiveConfig()))
    assert metrics["env_loss"] > 0 and all(g.abs().sum() > 0 for g in backward_grads(model, loss))


def test_env_only_is_the_env_loss_alone(model):
    batch = make_batch(standard_trajectories())
    loss, metrics = echo_loss(model, batch, ObjectiveConfig(algorithm="env_only"), (0.0, 1.0))
    assert metrics["lambda"] == 1.0 and loss.item() == pytest.approx(metrics["env_loss"])
    got = backward_grads(model, loss)
    logprobs = batch_logprobs(model, batch, ObjectiveConfig()).logprobs
    ce = ((-logprobs * batch.target_mask).sum(1) / batch.obs_count.clamp(min=1)).sum() / batch.n_seqs
    for g, w in zip(got, backward_grads(model, ce)):
        torch.testing.assert_close(g, w)


def test_micro_batch_losses_and_gradients_sum_to_the_full_batch(model):
    cfg = ObjectiveConfig(aggregation="token_mean")
    batch = make_batch(standard_trajectories(), cfg)
    full_loss, _ = echo_loss(model, batch, cfg, weights(cfg))
    full = backward_grads(model, full_loss)
    model.zero_grad(set_to_none=True)
    total = 0.0
    for part in batch.micro_batches(4):
        loss, _ = echo_loss(model, part, cfg, weights(cfg))
        loss.backward()
        total += loss.item()
    assert total == pytest.approx(full_loss.item(), rel=1e-5)
    for p, w in zip(model.parameters(), full):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-7)


def test_frozen_logprobs_put_each_micro_batch_back_in_its_own_rows(model):
    """The micro-batches group rows by length, not in order: their log-probs must land in the rows they came from."""
    cfg = ObjectiveConfig()
    batch = make_batch(standard_trajectories(), cfg)
    assert torch.cat(batch.micro_batch_rows(4)).tolist() != list(range(len(batch)))  # the case under test
    got = frozen_logprobs(model, batch, cfg, 4, "cpu")
    with torch.no_grad():
        want = batch_logprobs(model, batch, cfg, with_entropy=False).logprobs
    real = batch.attention_mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=1e-5, atol=1e-6)


def test_heldout_env_ce_is_at_temperature_one(model):
    batch = make_batch(standard_trajectories(), temperature=0.6)
    out = env_cross_entropy(model, batch, chunk_size=5)
    nll = -full_logits_logprobs(model, batch.input_ids, batch.attention_mask).logprobs
    assert out["env_tokens"] == batch.env_mask.sum().item()
    assert out["env_ce"] == pytest.approx(((nll * batch.env_mask).sum() / batch.env_mask.sum()).item(), rel=1e-5)
    assert out["warning_ce"] == pytest.approx(
        ((nll * batch.warning_mask).sum() / batch.warning_mask.sum()).item(), rel=1e-5
    )


def test_metrics_are_reported_and_finite(model):
    batch = make_batch(standard_trajectories(), temperature=0.8)
    _, metrics = echo_loss(model, batch, ObjectiveConfig(), weights(ObjectiveConfig()))
    expected = {
        "loss",
        "policy_loss",
        "env_loss",
        "env_loss_scaled",
        "lambda",
        "env_to_policy_ratio",
        "env_ce",
        "warning_ce",
        "target_ce",
        "clip_frac_low",
        "clip_frac_high",
        "approx_kl",
        "entropy_action",
        "entropy_env",
        "action_tokens",
        "env_tokens",
        "warning_tokens",
        "target_tokens",
        "seqs",
        "logprob_mismatch_mean",
        "logprob_mismatch_max",
    }
    assert expected <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["env_to_policy_ratio"] == pytest.approx(abs(metrics["env_loss_scaled"] / metrics["policy_loss"]))
