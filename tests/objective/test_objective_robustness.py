"""Degenerate rows never break a step: the loss is finite and every parameter gets a gradient, so no
worker skips a backward pass (method §2, last point)."""

import math

import pytest
import torch
from objective_helpers import make_batch, standard_trajectories, tiny_model, trajectory

from echo_rl.config import EnvLossConfig, ObjectiveConfig
from echo_rl.objective import LambdaBalancer, echo_loss, per_term_gradients

DEGENERATE = {
    "empty": lambda: trajectory([], prompt=0, task_id="x"),
    "prompt_only": lambda: trajectory([], prompt=6, task_id="x"),  # truncated before any action
    "infra_error": lambda: trajectory([{"env": 3}], task_id="x", outcome="infra_error"),
    "done_only": lambda: trajectory([{"done": True, "command": None}], task_id="x"),  # no observation
}


def _assert_finite_with_full_graph(model, loss, metrics):
    assert loss.requires_grad and torch.isfinite(loss)
    model.zero_grad(set_to_none=True)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("algorithm", ["grpo", "echo", "env_only"])
@pytest.mark.parametrize("rows", [list(DEGENERATE), ["empty"], ["prompt_only", "infra_error"]])
def test_batches_of_only_degenerate_rows(model, algorithm, rows):
    batch = make_batch([DEGENERATE[name]() for name in rows])
    cfg = ObjectiveConfig(algorithm=algorithm)
    loss, metrics = echo_loss(model, batch, cfg, LambdaBalancer(cfg).weights(0))
    assert loss.item() == 0
    _assert_finite_with_full_graph(model, loss, metrics)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("zero_advantage", [False, True])
def test_mixed_batches_in_every_precision(dtype, zero_advantage):
    model = tiny_model(dtype=dtype)
    trajs = standard_trajectories() + [make() for make in DEGENERATE.values()]
    if zero_advantage:
        for traj in trajs:
            traj.reward = 1.0
    batch = make_batch(trajs, temperature=0.8)
    batch.sampling_logprobs = batch.sampling_logprobs.to(dtype)
    cfg = ObjectiveConfig(tis_cap=2.0, env=EnvLossConfig(temperature_scaled=False))
    loss, metrics = echo_loss(model, batch, cfg, LambdaBalancer(cfg).weights(0))
    _assert_finite_with_full_graph(model, loss, metrics)
    assert metrics["env_loss"] > 0


def test_gradient_probe_on_degenerate_rows(model):
    batch = make_batch([DEGENERATE["empty"](), DEGENERATE["prompt_only"]()])
    grads = per_term_gradients(model, [batch], ObjectiveConfig())
    assert grads.norms() == (0.0, 0.0, 0.0)
