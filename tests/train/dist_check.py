"""Helper for the data-parallel tests, run by ``torchrun --nproc_per_node 2`` (and imported by the tests
for the 1-process reference).

    python -m torch.distributed.run --standalone --nproc_per_node 2 dist_check.py MODE SFT_RUN ROLLOUTS RESULT [RUN_OUT]

Every rank sets the model up for ``parallel.mode=MODE`` and runs two updates of
:func:`echo_rl.train.update.policy_update` on its share (whole groups, round-robin) of the same global
batch; rank 0 saves the full parameters and losses to RESULT. With RUN_OUT, all ranks then run a 1-step
training run with evaluation into RUN_OUT through the trainer's entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from train_configs import rl_config

from echo_rl.models.load import load_policy_model
from echo_rl.objective import LambdaBalancer
from echo_rl.rollout.trajectory import load_trajectories
from echo_rl.distributed import DistContext, init_distributed, shard
from echo_rl.train.optim import build_optimizer
from echo_rl.train.parallel import parallelize
from echo_rl.train.session import resolve_model_spec
from echo_rl.train.trainer import train
from echo_rl.train.update import policy_update

torch.set_num_threads(1)


def fixed_batch_updates(sft_run: Path, rollouts: Path, ctx: DistContext, mode: str = "auto") -> dict[str, object]:
    """Two ECHO updates on the groups of ``rollouts`` (this rank's share); final parameters and losses."""
    cfg = rl_config(sft_run, "echo", f"parallel.mode={mode}")
    model, tokenizer = load_policy_model(resolve_model_spec(str(sft_run)))
    trained = parallelize(model, cfg, ctx)
    optimizer, scheduler = build_optimizer(trained.module, cfg.optim)
    balancer = LambdaBalancer(cfg.objective)
    trajectories = load_trajectories(rollouts)
    size = cfg.train.rollouts_per_task
    groups = [trajectories[i : i + size] for i in range(0, len(trajectories), size)]
    mine = [t for group in shard(groups, ctx) for t in group]
    losses = []
    for step in (1, 2):
        pad = tokenizer.pad_token_id
        losses.append(policy_update(trained.module, optimizer, scheduler, balancer, mine, cfg, step, pad, ctx)["update/loss"])
        trained.refresh()
    params = trained.model_state() or trained.full.state_dict()
    return {"params": {k: v.clone() for k, v in params.items()}, "losses": losses,
            "sampler": {k: v.clone() for k, v in trained.full.state_dict().items()}}


if __name__ == "__main__":
    mode, sft_run, rollouts, result = sys.argv[1], *map(Path, sys.argv[2:5])
    ctx = init_distributed("cpu")
    outcome = fixed_batch_updates(sft_run, rollouts, ctx, mode)
    if ctx.is_main:
        torch.save(outcome, result)
    if len(sys.argv) > 5:
        overrides = ("train.steps=1", "train.eval_every=1", "eval.splits=[validation]", "eval.greedy=false",
                     "eval.samples_per_task=1", f"parallel.mode={mode}")
        train(rl_config(sft_run, "echo", *overrides), Path(sys.argv[5]))
