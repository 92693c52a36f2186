"""Shared, real training fixtures: the SFT run and 3-step RL runs from it (each built once per test
session, on first use). Their configs are in :mod:`train_configs`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_configs import make_config, rl_config

from echo_rl.train.sft import sft
from echo_rl.train.trainer import train

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory) -> Path:
    """A finished SFT run (30 steps, lr 2e-3) on the train tasks' expert transcripts."""
    return sft(make_config("optim.lr=2e-3", "name=sft"), tmp_path_factory.mktemp("sft") / "run")


@pytest.fixture(scope="session")
def rl_run(tmp_path_factory, sft_run):
    """``rl_run(algorithm)``: the 3-step RL run of ``algorithm`` from the SFT checkpoint (cached)."""
    runs: dict[str, Path] = {}

    def get(algorithm: str) -> Path:
        if algorithm not in runs:
            cfg = rl_config(sft_run, algorithm)
            runs[algorithm] = train(cfg, tmp_path_factory.mktemp(algorithm) / "run")
        return runs[algorithm]

    return get
