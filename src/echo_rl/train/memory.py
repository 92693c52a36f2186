"""Peak memory of a piece of work, measured at the allocator.

    with peak_memory(device) as peak:
        step()
    peak.bytes   # the most bytes of tensors live at once inside the block, above what was live at its start

On a GPU: CUDA's allocator statistics (``max_memory_allocated``). On the CPU: torch's profiler with
``profile_memory=True`` reports every allocation and free of the CPU allocator with its size and time;
replayed in time order, their running sum's maximum is the peak. Both count tensor storage only (not the
Python heap or the allocator's cache, unlike RSS, which keeps freed pages and moves with other processes'
pressure), so they compare like with like; the profiler slows the block down, so time it separately. What
was live at the block's start is not in the figure: add it (:func:`tensor_bytes`), as
:func:`measured_step_peak` does for parameters and optimizer state.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile


@dataclass
class Peak:
    bytes: int = 0


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[Peak]:
    """Measure the peak tensor memory of the block on ``device`` (module docstring) into the yielded
    :class:`Peak`."""
    peak = Peak()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield peak
        torch.cuda.synchronize(device)
        peak.bytes = torch.cuda.max_memory_allocated(device) - start
        return
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield peak
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
                     and e.device_type() == torch.autograd.DeviceType.CPU), key=lambda e: e.start_ns())
    peak.bytes = max(itertools.accumulate((e.nbytes() for e in events), initial=0))


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


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
    with peak_memory(input_ids.device) as peak:
        step()
    return tensor_bytes([*model.parameters(), *state]) + peak.bytes
