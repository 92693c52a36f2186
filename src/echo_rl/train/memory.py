"""Peak memory of a piece of work, measured at the allocator.

    with peak_memory(device) as peak:
        step()
    peak.bytes   # the most bytes of tensors live at once inside the block, above what was live at its start

On a GPU: CUDA's allocator statistics (``max_memory_allocated``). On the CPU: torch's profiler with
``profile_memory=True`` reports every allocation and free of the CPU allocator with its size and time;
replayed in time order, their running sum's maximum is the peak. Both count tensor storage only (not the
Python heap or the allocator's cache), so they compare like with like; the profiler slows the block down, so
time it separately.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
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
