"""Seeds derived from the run seed, so that every random draw of a run is a function of (seed, what, step,
rank) — the same after a resume as in an uninterrupted run."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from ``parts`` (stable across processes and Python versions)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
