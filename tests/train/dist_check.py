"""Helper for the data-parallel test, run by ``torchrun --nproc_per_node 2`` (and imported by the test
for the 1-process reference).

    python -m torch.distributed.run --standalone --nproc_per_node 2 dist_check.py SFT_RUN ROLLOUTS RESULT RUN_OUT

Every rank runs two updates of :func:`echo_rl.train.update.policy_update` on its share (whole groups) of
the same global batch, rank 0 saves the parameters and losses to RESULT; then all ranks run a 1-step
training run with evaluation into RUN_OUT through the real CLI entry point of the trainer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from train_configs import rl_config

from echo_rl.models.load import load_policy_model
from echo_rl.objective import LambdaBalancer
from echo_rl.rollout.trajectory import load_trajectories
from echo_rl.train.distributed import DistContext, init_distributed, shard
from echo_rl.train.optim import build_optimizer
from echo_rl.train.session import resolve_model_spec
from echo_rl.train.trainer import train
from echo_rl.train.update import policy_update

torch.set_num_threads(1)


def fixed_batch_updates(sft_run: Path, rollouts: Path, ctx: DistContext) -> dict[str, object]:
    """Two ECHO updates on the groups of ``rollouts`` (this rank's share); final parameters and losses."""
    cfg = rl_config(sft_run, "echo")
    model, tokenizer = load_policy_model(resolve_model_spec(str(sft_run)))
    optimizer, scheduler = build_optimizer(model, cfg.optim)
    balancer = LambdaBalancer(cfg.objective)
    trajectories = load_trajectories(rollouts)
    size = cfg.train.rollouts_per_task
    groups = [trajectories[i : i + size] for i in range(0, len(trajectories), size)]
    mine = [t for group in shard(groups, ctx) for t in group]
    losses = [
        policy_update(model, optimizer, scheduler, balancer, mine, cfg, step, tokenizer.pad_token_id, ctx)["loss"]
        for step in (1, 2)
    ]
    return {"params": {k: v.clone() for k, v in model.state_dict().items()}, "losses": losses}


if __name__ == "__main__":
    sft_run, rollouts, result, run_out = map(Path, sys.argv[1:5])
    ctx = init_distributed("cpu")
    outcome = fixed_batch_updates(sft_run, rollouts, ctx)
    if ctx.is_main:
        torch.save(outcome, result)
    overrides = ("train.steps=1", "train.eval_every=1", "eval.splits=[validation]", "eval.greedy=false",
                 "eval.samples_per_task=1")
    train(rl_config(sft_run, "echo", *overrides), run_out)
