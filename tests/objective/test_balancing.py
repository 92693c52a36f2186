import dataclasses

import pytest
import torch
from objective_helpers import backward_grads, make_batch, standard_trajectories

from echo_rl.config import BalanceConfig, EnvLossConfig, ObjectiveConfig
from echo_rl.objective import LambdaBalancer, echo_loss, per_term_gradients


def _norm(tensors):
    return sum(float((t.double() ** 2).sum()) for t in tensors) ** 0.5


def _cfg(lam=0.05, **balance):
    return ObjectiveConfig(grad_probe_every=1, env=EnvLossConfig(lam=lam, balance=BalanceConfig(**balance)))


def test_per_term_gradients_add_up_to_the_echo_gradient(model):
    cfg = _cfg()
    batch = make_batch(standard_trajectories(), cfg, temperature=0.8)
    grads = per_term_gradients(model, batch.micro_batches(4), cfg)
    loss, _ = echo_loss(model, batch, cfg, LambdaBalancer(cfg).weights(0))
    for g_policy, g_env, want in zip(grads.policy, grads.env, backward_grads(model, loss)):
        torch.testing.assert_close(g_policy + 0.05 * g_env, want, rtol=1e-4, atol=1e-7)
    policy_norm, env_norm, cosine = grads.norms()
    assert policy_norm == pytest.approx(_norm(grads.policy)) and env_norm == pytest.approx(_norm(grads.env))
    assert -1 <= cosine <= 1 and len(grads.metrics) == 2


def test_adaptive_lambda_keeps_the_env_gradient_under_its_bound_when_it_is_10x_larger(model):
    batch = make_batch(standard_trajectories(), temperature=0.8)
    policy_norm, env_norm, _ = per_term_gradients(model, [batch], _cfg()).norms()
    lam = 10 * policy_norm / env_norm  # ‖λ·∇L_env‖ = 10 ‖∇L_GRPO‖ at the start

    unbalanced = LambdaBalancer(_cfg(lam, cap=100.0))
    metrics = unbalanced.apply(per_term_gradients(model, [batch], unbalanced.cfg), step=0)
    assert metrics["grad_env_to_policy"] == pytest.approx(10, rel=1e-4)

    balancer = LambdaBalancer(_cfg(lam, mode="adaptive", max_ratio=0.5, cap=100.0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(5):
        optimizer.zero_grad(set_to_none=True)
        grads = per_term_gradients(model, [batch], balancer.cfg)
        metrics = balancer.apply(grads, step)
        assert metrics["grad_env_to_policy"] <= 0.5 * (1 + 1e-9)
        assert metrics["lambda_effective"] < lam
        env_part = [p.grad - g for p, g in zip(model.parameters(), grads.policy)]  # what the update holds
        assert _norm(env_part) <= 0.5 * _norm(grads.policy) * (1 + 1e-4)
        optimizer.step()


def test_adaptive_falls_back_to_plain_lambda_when_the_policy_gradient_is_zero(model):
    trajs = standard_trajectories()
    for traj in trajs:
        traj.reward = 0.0
    batch = make_batch(trajs)
    balancer = LambdaBalancer(_cfg(0.05, mode="adaptive"))
    metrics = balancer.apply(per_term_gradients(model, [batch], balancer.cfg), step=0)
    assert metrics["grad_policy_norm"] == 0 and metrics["lambda_effective"] == 0.05
    capped = LambdaBalancer(_cfg(0.05, mode="adaptive", cap=0.01))
    assert capped.apply(per_term_gradients(model, [batch], capped.cfg), step=0)["lambda_effective"] == 0.01


def test_floor_and_cap_bound_the_effective_lambda():
    balancer = LambdaBalancer(_cfg(0.05, mode="adaptive", floor=0.02, cap=0.04))
    balancer.bound = 0.001
    assert balancer.weights(0) == (1.0, 0.02)
    balancer.bound = 1.0
    assert balancer.weights(0) == (1.0, 0.04)
    assert LambdaBalancer(ObjectiveConfig(algorithm="grpo")).weights(0) == (1.0, 0.0)


def test_separate_clipping_clips_each_term_before_summing(model):
    cfg = _cfg(1.0, separate_clip=1e-3)
    batch = make_batch(standard_trajectories())
    grads = per_term_gradients(model, [batch], cfg)
    LambdaBalancer(cfg).apply(grads, step=0)
    policy = [g * (1e-3 / _norm(grads.policy)) for g in grads.policy]
    env = [g * (1e-3 / _norm(grads.env)) for g in grads.env]
    for p, a, b in zip(model.parameters(), policy, env):
        torch.testing.assert_close(p.grad, a + b)


def test_probe_schedule():
    every_3 = LambdaBalancer(ObjectiveConfig(grad_probe_every=3))
    assert [every_3.probe_due(s) for s in range(5)] == [True, False, False, True, False]
    assert not LambdaBalancer(ObjectiveConfig()).probe_due(0)
    assert LambdaBalancer(_cfg(separate_clip=1.0).model_copy(update={"grad_probe_every": 0})).probe_due(1)
    with pytest.raises(ValueError, match="grad_probe_every"):
        ObjectiveConfig(env=EnvLossConfig(balance=BalanceConfig(mode="adaptive")))


def test_the_env_to_policy_ratio_is_not_logged_when_no_group_has_an_advantage(model):
    uniform = [dataclasses.replace(t, reward=1.0) for t in standard_trajectories()]  # every group all-pass
    cfg = _cfg()
    metrics = LambdaBalancer(cfg).apply(per_term_gradients(model, [make_batch(uniform, cfg)], cfg), step=0)
    assert metrics["grad_policy_norm"] == 0 and metrics["grad_env_norm"] > 0
    assert "grad_env_to_policy" not in metrics  # was w·‖g_env‖/1e-12 ≈ 1e10, which swamped any mean over steps
