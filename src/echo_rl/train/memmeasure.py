"""Measured peak memory of a callable on the CPU, from the allocator's own events.

    peak = peak_allocated_bytes(step)      # bytes live at the start + the highest running total of step()

``torch.profiler`` with ``profile_memory=True`` records every CPU allocation and free (``[memory]``
events with signed byte counts); their running sum in time order, its maximum, is the step's peak above
what was live when it started. Allocator-level and deterministic, unlike the process's RSS (which keeps
freed pages, counts the interpreter and libraries, and moves with the other processes' pressure). What
was live at the start is not in the events: the caller passes it (``live_bytes``), e.g. the parameters
and optimizer state (:func:`tensor_bytes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.profiler import ProfilerActivity, profile


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def peak_allocated_bytes(fn: Callable[[], object], live_bytes: int = 0) -> int:
    """``live_bytes`` plus the peak of the CPU allocator's running total while ``fn()`` runs."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return live_bytes + peak


def measured_step_peak(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, chunk_size: int,
    micro_batches: int = 2, dtype: str = "float32",
) -> int:
    """Peak bytes of a steady-state training step of ``model`` (CPU): ``micro_batches`` forward + backward
    passes of the objective's one forward pass (:func:`~echo_rl.objective.logprobs.token_logprobs` with
    entropy, as the ECHO loss runs it, under the trainer's compute precision ``dtype``) accumulating
    gradients, then an AdamW step. A first, unmeasured step creates AdamW's state, so the measured one
    starts with parameters and optimizer state live."""
    from echo_rl.objective.logprobs import token_logprobs
    from echo_rl.train.precision import compute_autocast

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        for _ in range(micro_batches):
            with compute_autocast(dtype, input_ids.device):
                out = token_logprobs(model, input_ids, attention_mask, chunk_size, temperature=0.8, with_entropy=True)
            (-out.logprobs.sum() / attention_mask.sum()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    state = [t for per_param in optimizer.state.values() for t in per_param.values() if isinstance(t, torch.Tensor)]
    return peak_allocated_bytes(step, tensor_bytes([*model.parameters(), *state]))
