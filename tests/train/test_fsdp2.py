"""FSDP2 (``parallel.mode=fsdp2``) on 2 CPU ranks under torchrun (gloo), issue 16 item 2: an update equals the
1-process update on the same global batch, and a run killed after a checkpoint and resumed with
``--resume`` ends on the uninterrupted run's metrics and weights; its checkpoints are Hugging Face folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from dist_check import fixed_batch_updates
from safetensors.torch import load_file
from train_configs import rl_config
from transformers import AutoModelForCausalLM

from echo_rl.configfile import dump_config
from echo_rl.rollout.trajectory import load_trajectories, save_trajectories
from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import latest_checkpoint
from echo_rl.distributed import DistContext

HELPER = Path(__file__).with_name("dist_check.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TIMING = {"time/rollout_s", "time/step_s", "time/tokens_per_s"}


def test_fsdp2_update_equals_one_process_update(rl_run, sft_run, tmp_path):
    # three groups: rank 0 gets two (2 micro-batches), rank 1 one (its second pass is an idle one)
    steps = [load_trajectories(rl_run("echo") / "rollouts" / f"step-00000{i}.jsonl") for i in (1, 2)]
    rollouts = steps[0] + steps[1][:4]
    for i, trajectory in enumerate(rollouts):  # mixed rewards in every group: both terms carry gradient
        trajectory.reward, trajectory.outcome = (1.0, "solved") if i % 2 else (0.0, "failed")
    batch, result = tmp_path / "batch.jsonl", tmp_path / "result.pt"
    save_trajectories(batch, rollouts)
    proc = subprocess.run([*TORCHRUN, str(HELPER), "fsdp2", str(sft_run), str(batch), str(result)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    sharded = torch.load(result, weights_only=False)
    alone = fixed_batch_updates(sft_run, batch, DistContext(), "none")
    print(f"losses: 1 process {alone['losses']}, FSDP2 on 2 ranks {sharded['losses']}")
    assert torch.allclose(torch.tensor(alone["losses"]), torch.tensor(sharded["losses"]), rtol=1e-5, atol=1e-7)
    assert sharded["params"].keys() == alone["params"].keys()
    worst = max(float((alone["params"][k] - sharded["params"][k]).abs().max()) for k in alone["params"])
    print(f"largest parameter difference after 2 updates: {worst:.3g}")
    assert worst < 1e-5  # fp32; the sums over ranks add in another order
    start = load_file(latest_checkpoint(sft_run / "checkpoints") / "model.safetensors")
    assert any(not torch.equal(start[k], alone["params"][k]) for k in start), "the updates changed nothing"
    for name, value in sharded["sampler"].items():  # the sampler's unsharded copy holds the updated weights
        assert torch.equal(value, sharded["params"][name]), name


def _train_records(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run).read_metrics() if r["kind"] == "train"]


def _torchrun_train(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*TORCHRUN, "-m", "echo_rl", "train", str(config), "--out", str(out), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun's workers (each in a session of its own), then torchrun."""
    for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
        os.kill(int(pid), signal.SIGKILL)
    proc.kill()
    proc.communicate()


def _finish(proc: subprocess.Popen) -> None:
    _, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]


@pytest.mark.slow
def test_fsdp2_killed_run_resumes_onto_the_uninterrupted_run(sft_run, tmp_path):
    config = tmp_path / "fsdp2.yaml"
    config.write_text(dump_config(rl_config(sft_run, "echo", "parallel.mode=fsdp2", "train.steps=2")))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _finish(_torchrun_train(config, whole))

    proc = _torchrun_train(config, killed)
    try:
        deadline = time.monotonic() + 900
        while not (killed / "checkpoints" / "step-000001" / "COMPLETE").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint of step 1"
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the kill"
    finally:
        _kill(proc)
    assert latest_checkpoint(killed / "checkpoints").name == "step-000001"
    _finish(_torchrun_train(config, killed, "--resume"))

    assert [r["step"] for r in _train_records(killed)] == [1, 2]
    assert _train_records(killed) == _train_records(whole)
    final = [latest_checkpoint(run / "checkpoints") for run in (whole, killed)]
    assert [path.name for path in final] == ["step-000002", "step-000002"]
    models = [AutoModelForCausalLM.from_pretrained(path) for path in final]  # Hugging Face folders, full weights
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert a.dtype == torch.float32 and torch.equal(a, b), name
