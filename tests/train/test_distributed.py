"""Data parallelism: 2-process torchrun (gloo, CPU) equals 1 process on the same global batch, and a
training run with evaluation works end to end under torchrun and samples the same episodes as one process
(issue 7, item 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from dist_check import fixed_batch_updates
from safetensors.torch import load_file

from echo_rl.rollout.trajectory import load_trajectories, save_trajectories
from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import latest_checkpoint
from echo_rl.distributed import DistContext

HELPER = Path(__file__).with_name("dist_check.py")


def test_two_process_torchrun_equals_one_process(rl_run, sft_run, tmp_path):
    rollouts = load_trajectories(rl_run("echo") / "rollouts" / "step-000001.jsonl")
    assert len(rollouts) == 8
    for i, trajectory in enumerate(rollouts):  # mixed rewards in both groups: both terms carry gradient
        trajectory.reward, trajectory.outcome = (1.0, "solved") if i % 2 else (0.0, "failed")
    batch = tmp_path / "batch.jsonl"
    save_trajectories(batch, rollouts)
    result, run_out = tmp_path / "result.pt", tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(HELPER), "auto",
         str(sft_run), str(batch), str(result), str(run_out)],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    two = torch.load(result, weights_only=False)
    one = fixed_batch_updates(sft_run, batch, DistContext())
    print(f"losses: 1 process {one['losses']}, 2 processes {two['losses']}")
    assert torch.allclose(torch.tensor(one["losses"]), torch.tensor(two["losses"]), rtol=1e-5, atol=1e-7)
    start = load_file(latest_checkpoint(sft_run / "checkpoints") / "model.safetensors")
    # The two updates agree up to float summation order (gloo's all-reduce adds the ranks' halves). Adam turns
    # an element whose gradient nearly cancels into a ±lr step either way, so the test bounds the difference
    # of the whole update against the update, not its worst element (3e-5 on 1e-3 steps, measured).
    update = sum(float((one["params"][k] - start[k]).square().sum()) for k in start) ** 0.5
    apart = sum(float((one["params"][k] - two["params"][k]).square().sum()) for k in start) ** 0.5
    print(f"parameter update after 2 steps: norm {update:.3g}; 1 vs 2 processes: norm {apart:.3g}")
    assert update > 0, "the updates changed nothing"
    assert apart < 1e-3 * update

    records = RunDir(run_out).read_metrics()
    train_records = [r for r in records if r["kind"] == "train"]
    assert len(train_records) == 1 and train_records[0]["rollout/episodes"] == 8, "each rank's rollouts counted once"
    assert [r["step"] for r in records if r["kind"] == "eval"] == [0, 1]
    assert latest_checkpoint(run_out / "checkpoints").name == "step-000001"

    # per-episode random streams: rank 0 sampled exactly the episodes the 1-process run sampled for its groups
    ranked = load_trajectories(run_out / "rollouts" / "step-000001.jsonl")
    alone = load_trajectories(rl_run("echo") / "rollouts" / "step-000001.jsonl")
    assert len(ranked) == 4 and [t.token_ids for t in ranked] == [t.token_ids for t in alone[:4]]
    alone_record = next(r for r in RunDir(rl_run("echo")).read_metrics() if r["kind"] == "train")
    for key in ("rollout/reward_mean", "rollout/tokens_mean", "rollout/turns_mean", "rollout/action_tokens",
                "update/action_tokens", "update/env_tokens"):
        assert train_records[0][key] == alone_record[key], key
