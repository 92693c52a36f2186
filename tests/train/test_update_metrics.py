"""The balancer alone decides the term weights and the update trains with them (issue 19.4); plain and
probe steps log through one function; merged metric sources never overwrite each other (issue 19.5)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "objective"))
from objective_helpers import standard_trajectories, tiny_model  # noqa: E402

from echo_rl.configfile import config_from_dict  # noqa: E402
from echo_rl.distributed import DistContext  # noqa: E402
from echo_rl.objective import LambdaBalancer, echo_loss  # noqa: E402
from echo_rl.train.metrics import merged, prefixed  # noqa: E402
from echo_rl.train.optim import build_optimizer  # noqa: E402
from echo_rl.train.update import build_batch, policy_update  # noqa: E402

torch.set_num_threads(1)

LOSS_NAMES = ("loss", "lambda", "policy_loss", "env_loss", "env_loss_scaled", "env_to_policy_ratio")


def config(**objective):
    return config_from_dict({
        "train": {"rollouts_per_task": 3, "tasks_per_step": 2, "micro_batch_size": 2},
        "sampling": {"temperature": 1.0}, "optim": {"warmup_steps": 0, "grad_clip": 1e9, "weight_decay": 0.0},
        "objective": {"algorithm": "echo", "env": {"lam": 0.1}} | objective,
    })


def _update(cfg, balancer, model=None):
    """One policy_update of the standard rollouts; its record and the gradient it stepped with."""
    model = model or tiny_model()
    optimizer, scheduler = build_optimizer(model, cfg.optim)
    grads: list[list[torch.Tensor]] = []
    optimizer.register_step_pre_hook(lambda *_: grads.append([p.grad.clone() for p in model.parameters()]))
    record = policy_update(model, optimizer, scheduler, balancer, standard_trajectories(), cfg, 1, 0, DistContext())
    return record, grads[0]


def test_the_update_trains_with_the_weights_the_balancer_decides():
    """An adaptive bound (0.02) below the schedule's λ (0.1): the gradient is that of L_GRPO + 0.02·L_env —
    echo_loss given the balancer's weights — and the log says 0.02; the loss recomputes no schedule."""
    cfg = config(env={"lam": 0.1, "balance": {"mode": "adaptive"}}, grad_probe_every=10)  # step 1: no probe
    balancer = LambdaBalancer(cfg.objective)
    balancer.bound = 0.02
    assert balancer.weights(1) == (1.0, 0.02)
    model = tiny_model()
    start = copy.deepcopy(model.state_dict())
    record, stepped = _update(cfg, balancer, model)
    model.load_state_dict(start)
    model.zero_grad(set_to_none=True)
    loss, metrics = echo_loss(model, build_batch(standard_trajectories(), cfg, 0)[0], cfg.objective, (1.0, 0.02))
    loss.backward()
    for got, want in zip(stepped, [p.grad for p in model.parameters()]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
    assert record["update/lambda"] == 0.02
    assert record["update/loss"] == pytest.approx(metrics["loss"], rel=1e-5)
    assert record["update/loss"] == pytest.approx(record["update/policy_loss"] + 0.02 * record["update/env_loss"])


def test_plain_and_probe_steps_log_the_same_names_and_values():
    plain, _ = _update(config(), LambdaBalancer(config().objective))
    probe_cfg = config(grad_probe_every=1)
    probe, _ = _update(probe_cfg, LambdaBalancer(probe_cfg.objective))
    probe_only = {"update/grad_policy_norm", "update/grad_env_norm", "update/grad_env_weighted_norm",
                  "update/grad_cosine", "update/grad_env_to_policy", "update/lambda_effective"}
    assert set(plain) == set(probe) - probe_only
    for name in LOSS_NAMES:
        assert probe[f"update/{name}"] == pytest.approx(plain[f"update/{name}"], rel=1e-5), name


def test_merged_sources_keep_every_name_and_refuse_a_clash():
    update = prefixed("update", {"action_tokens": 120.0, "loss": 0.3})
    rollout = prefixed("rollout", {"action_tokens": 200, "pass_rate": 0.5})
    record = merged({"kind": "train", "step": 1}, update, rollout)
    assert record == {"kind": "train", "step": 1, "update/action_tokens": 120.0, "update/loss": 0.3,
                      "rollout/action_tokens": 200, "rollout/pass_rate": 0.5}
    with pytest.raises(ValueError, match="metric names written by two sources: update/loss$"):
        merged(update, {"update/loss": 1.0})
