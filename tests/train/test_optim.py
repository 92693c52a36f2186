"""The optimizer's LR schedule: linear warm-up, then constant or a linear decay to 0 at ``decay_steps``."""

import pytest
import torch
from pydantic import ValidationError

from echo_rl.config import OptimConfig
from echo_rl.models.load import load_policy_model
from echo_rl.train.optim import build_optimizer, clip_and_step

torch.set_num_threads(1)


def _lrs_used(cfg: OptimConfig, updates: int) -> list[float]:
    """The LR each of ``updates`` real optimizer updates of the tiny model ran with."""
    model, _ = load_policy_model("tiny")
    model.train()
    optimizer, scheduler = build_optimizer(model, cfg)
    ids = torch.arange(1, 9)[None]
    used = []
    for _ in range(updates):
        used.append(optimizer.param_groups[0]["lr"])
        model(input_ids=ids, labels=ids).loss.backward()
        clip_and_step(model, optimizer, scheduler, 1.0)
    return used


def test_decay_falls_linearly_to_zero_at_decay_steps_after_the_warm_up():
    used = _lrs_used(OptimConfig(lr=1.0, warmup_steps=3, decay_steps=8), 10)
    assert used == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0])
    assert _lrs_used(OptimConfig(lr=1.0, warmup_steps=2), 5) == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0, 1.0])


def test_a_decay_that_ends_inside_the_warm_up_is_refused():
    with pytest.raises(ValidationError, match=r"decay_steps \(20\) must exceed warmup_steps \(20\)"):
        OptimConfig(warmup_steps=20, decay_steps=20)
