"""Helpers over sequences (token ids, text) shared by the harness and the policy backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

S = TypeVar("S", bound=Sequence[Any])


def common_prefix(a: S, b: S) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` (lists, strings…): bisection over slice
    comparisons, so the element-wise work runs in C — O(n log n) but far faster than a Python loop."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while high - low > 1:  # a[:low] == b[:low] and a[:high] != b[:high]
        middle = (low + high) // 2
        low, high = (middle, high) if a[:middle] == b[:middle] else (low, middle)
    return low
