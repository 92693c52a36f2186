"""Activation checkpointing (``parallel.activation_checkpointing``, issue 16 item 3): the same gradients, less
peak memory (allocator-level, :func:`echo_rl.train.memory.peak_memory`)."""

from __future__ import annotations

import torch
from train_configs import make_config

from echo_rl.models.load import load_policy_model
from echo_rl.objective.logprobs import token_logprobs
from echo_rl.distributed import DistContext
from echo_rl.train.memory import peak_memory
from echo_rl.train.parallel import parallelize


def _gradients_and_peak(checkpointing: bool, ids: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
    model, _ = load_policy_model("tiny")
    cfg = make_config(f"parallel.activation_checkpointing={str(checkpointing).lower()}")
    module = parallelize(model, cfg, DistContext()).module
    module.train()
    with peak_memory(torch.device("cpu")) as peak:
        token_logprobs(module, ids, torch.ones_like(ids), chunk_size=256).logprobs.mean().backward()
    return {name: p.grad.clone() for name, p in module.named_parameters()}, peak.bytes


def test_checkpointing_gives_the_same_gradients_with_less_peak_memory():
    ids = torch.randint(0, 600, (4, 512), generator=torch.Generator().manual_seed(0))
    plain, plain_peak = _gradients_and_peak(False, ids)
    recomputed, recomputed_peak = _gradients_and_peak(True, ids)
    worst = max(float((plain[k] - recomputed[k]).abs().max()) for k in plain)
    print(f"peak memory of forward + backward: {plain_peak / 2**20:.1f} MiB without checkpointing, "
          f"{recomputed_peak / 2**20:.1f} MiB with ({recomputed_peak / plain_peak:.2f}x); largest gradient "
          f"difference {worst:.2g}")
    assert worst < 1e-6
    assert recomputed_peak < 0.7 * plain_peak
