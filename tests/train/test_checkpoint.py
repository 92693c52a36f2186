"""Checkpoints: round trip of every piece of state, and no checkpoint that loads as valid after a crash."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from echo_rl.config import OptimConfig
from echo_rl.errors import UserError
from echo_rl.models.load import load_policy_model
from echo_rl.train.checkpoint import (
    is_complete,
    latest_checkpoint,
    list_checkpoints,
    load_training_state,
    read_optimizer_state,
    read_state,
    remove_partial,
    save_checkpoint,
)
from echo_rl.train.optim import build_optimizer, clip_and_step

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return load_policy_model("tiny")


def _train_one_step(model, optimizer, scheduler):
    ids = torch.arange(1, 17)[None]
    model.train()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    clip_and_step(model, optimizer, scheduler, 1.0)


def test_round_trip_restores_model_optimizer_scheduler_rng_and_state(tiny, tmp_path):
    model, tokenizer = tiny
    optimizer, scheduler = build_optimizer(model, OptimConfig(lr=1e-3, warmup_steps=3))
    _train_one_step(model, optimizer, scheduler)
    path = save_checkpoint(tmp_path, 7, model, tokenizer, optimizer.state_dict(), scheduler, {"sampler": {"epoch": 1}})
    expected_draws = (random.random(), np.random.rand(), torch.rand(3))

    loaded, loaded_tok = load_policy_model(str(path))
    opt2, sched2 = build_optimizer(loaded, OptimConfig(lr=1e-3, warmup_steps=3))
    state = load_training_state(path, sched2)
    opt2.load_state_dict(read_optimizer_state(path))
    assert state == {"step": 7, "sampler": {"epoch": 1}}
    assert (random.random(), np.random.rand()) == expected_draws[:2] and torch.equal(torch.rand(3), expected_draws[2])
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert sched2.get_last_lr() == scheduler.get_last_lr()
    assert opt2.state_dict()["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])
    assert loaded_tok.chat_template == tokenizer.chat_template
    assert (path / "model.safetensors").is_file() and latest_checkpoint(tmp_path) == path


def test_damaged_or_partial_checkpoints_never_count_as_valid(tiny, tmp_path):
    model, tokenizer = tiny
    good = save_checkpoint(tmp_path, 1, model, tokenizer, None, None, {})
    bad = save_checkpoint(tmp_path, 2, model, tokenizer, None, None, {})
    with (bad / "model.safetensors").open("r+b") as handle:
        handle.truncate(100)
    (tmp_path / ".step-000003.crashed").mkdir()
    assert not is_complete(bad) and latest_checkpoint(tmp_path) == good
    with pytest.raises(UserError, match="not a complete checkpoint"):
        read_state(bad)
    assert sorted(p.name for p in remove_partial(tmp_path)) == [".step-000003.crashed", "step-000002"]
    assert [step for step, _ in list_checkpoints(tmp_path)] == [1]


def test_sigkill_during_writes_leaves_only_loadable_checkpoints(tmp_path):
    """A writer saving checkpoints in a loop is SIGKILLed at a random moment; every checkpoint that
    counts as complete loads, and nothing else counts."""
    script = textwrap.dedent(
        f"""
        import torch, sys
        torch.set_num_threads(1)
        from pathlib import Path
        from echo_rl.models.load import load_policy_model
        from echo_rl.train.checkpoint import save_checkpoint
        model, tok = load_policy_model("tiny")
        print("ready", flush=True)
        for step in range(1, 1000):
            save_checkpoint(Path({str(tmp_path)!r}), step, model, tok, None, None, {{"n": step}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("step-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.3))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    complete = list_checkpoints(tmp_path)
    assert len(complete) >= 1
    for step, path in complete:
        assert read_state(path)["n"] == step
        assert load_file(path / "model.safetensors")
    names = {p.name for p in tmp_path.iterdir()}
    assert names - {p.name for _, p in complete} == {p.name for p in remove_partial(tmp_path)}
