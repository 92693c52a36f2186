"""echo_rl.loss: the tensor-level env CE and combined loss, and echo-rl's own objective calling it."""

import pytest
import torch

from objective_helpers import make_batch, standard_trajectories

from echo_rl.config import ObjectiveConfig
from echo_rl.loss import echo_loss, env_cross_entropy
from echo_rl.objective import env_term

LOGPROBS = torch.tensor([[0.0, -1.0, -2.0, -3.0], [0.0, -4.0, -5.0, 0.0], [0.0, -6.0, 0.0, 0.0]])
MASK = torch.tensor([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)


def test_sequence_normaliser_averages_each_rows_token_mean_over_all_rows():
    # rows: (1+2)/2, (4+5)/2, empty row counts in N with 0
    expected = (1.5 + 4.5 + 0.0) / 3
    assert env_cross_entropy(LOGPROBS, MASK, "sequence").item() == pytest.approx(expected)


def test_tokens_normaliser_weighs_every_token_and_takes_a_global_count():
    assert env_cross_entropy(LOGPROBS, MASK, "tokens").item() == pytest.approx(12 / 4)
    assert env_cross_entropy(LOGPROBS, MASK, "tokens", n_tokens=12.0).item() == pytest.approx(1.0)


def test_observation_and_constant_normalisers_use_their_denominators():
    obs = torch.tensor([3.0, 2.0, 0.0])
    assert env_cross_entropy(LOGPROBS, MASK, "observation", obs_count=obs).item() == pytest.approx((3 / 3 + 9 / 2) / 3)
    assert env_cross_entropy(LOGPROBS, MASK, "constant", constant=10.0, n_seqs=2.0).item() == pytest.approx(12 / 20)


def test_the_same_lambda_is_a_different_strength_under_different_normalisers():
    long_output = torch.zeros(2, 101, dtype=torch.bool)
    long_output[0, 1:] = True  # one rollout with 100 env tokens
    long_output[1, 1:3] = True  # one with 2
    logprobs = torch.full((2, 101), -1.0)
    per_sequence = env_cross_entropy(logprobs, long_output, "sequence")
    per_token = env_cross_entropy(logprobs, long_output, "tokens")
    assert per_sequence.item() == pytest.approx(1.0) and per_token.item() == pytest.approx(1.0)
    # ...but the gradient on the short rollout's tokens differs by (102 / 2) / 2 = 25.5x
    lp = logprobs.clone().requires_grad_()
    env_cross_entropy(lp, long_output, "sequence").backward()
    g_seq = lp.grad[1, 1].item()
    lp.grad = None
    env_cross_entropy(lp, long_output, "tokens").backward()
    assert g_seq / lp.grad[1, 1].item() == pytest.approx(25.5)


def test_lambda_zero_returns_the_policy_loss_bit_for_bit_and_no_env_gradient():
    logprobs = LOGPROBS.clone().requires_grad_()
    policy = (logprobs * 0.3).sum()
    loss = echo_loss(policy, logprobs, MASK, 0.0)
    assert torch.equal(loss, policy)
    loss.backward()
    assert torch.equal(logprobs.grad, torch.full_like(LOGPROBS, 0.3))


def test_combined_gradient_is_policy_plus_lambda_times_env_gradient():
    logprobs = LOGPROBS.clone().requires_grad_()
    echo_loss((logprobs * 0.3).sum(), logprobs, MASK, 0.5).backward()
    expected = torch.full_like(LOGPROBS, 0.3) - 0.5 * MASK.float() / 2 / 3  # d(−lp/|O_s|/N)
    assert torch.allclose(logprobs.grad, expected)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="obs_count"):
        env_cross_entropy(LOGPROBS, MASK, "observation")
    with pytest.raises(ValueError, match="constant"):
        env_cross_entropy(LOGPROBS, MASK, "constant")
    with pytest.raises(ValueError, match="unknown normalizer"):
        env_cross_entropy(LOGPROBS, MASK, "mean")
    with pytest.raises(ValueError, match="shape"):
        env_cross_entropy(LOGPROBS, MASK[:, :3], "sequence")


@pytest.mark.parametrize(
    ("setting", "normalizer"),
    [("full_observation_tokens", "observation"), ("selected_tokens", "sequence"), ("constant", "constant")],
)
def test_echo_rl_objective_env_term_equals_the_tensor_api(setting, normalizer):
    cfg = ObjectiveConfig.model_validate({"env": {"normalization": setting, "norm_constant": 7.0}})
    batch = make_batch(standard_trajectories(), cfg)
    logprobs = -torch.rand(batch.input_ids.shape)
    loss, _ = env_term(logprobs, batch, cfg.env)
    expected = env_cross_entropy(
        logprobs, batch.target_mask, normalizer, obs_count=batch.obs_count, constant=7.0, n_seqs=batch.n_seqs
    )
    assert torch.equal(loss, expected) and loss.item() > 0
