"""Compute precision: fp32 master weights, ``policy.dtype`` for the arithmetic of every forward pass.

The trainer holds its weights, their gradients and AdamW's moments in float32 (a bf16 weight stepped
directly by lr 1e-6 does not move: its spacing near 1 is 2^-7). ``policy.dtype`` names the COMPUTE dtype:
forward passes run under ``torch.autocast`` in that dtype (matmuls and attention in bf16; norms,
softmax and the loss in float32, autocast's own rules), so the backward pass yields float32 gradients on
the float32 parameters, which data parallelism reduces in float32.

One rule for everything that scores tokens with the trained weights: the trainer's forward, the
reference model, and the transformers rollout backend (which samples from the same in-memory module) run
under :func:`compute_autocast` with the same dtype, so the sampler's recorded log-probs and the trainer's
agree up to batch-composition noise, not up to a precision gap.

``float16`` is refused for training (:func:`require_trainable`, before anything is written): its 5-bit
exponent needs a loss scaler, which the trainer does not have (the probe steps take gradients with
``autograd.grad``, outside any scaler); bfloat16 has float32's range and needs none. FSDP2 expresses the
same rule with ``MixedPrecisionPolicy(param_dtype=compute_dtype(name), reduce_dtype=torch.float32)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from echo_rl.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype(name: str) -> torch.dtype:
    """The torch dtype of a ``policy.dtype`` name."""
    return DTYPES[name]


@contextlib.contextmanager
def compute_autocast(name: str, device: torch.device | str) -> Iterator[None]:
    """Forward passes inside run in ``name``'s precision on ``device``: ``torch.autocast`` for bfloat16 /
    float16, nothing for float32 (the weights' own precision). Autocast is thread-local: enter it on the
    thread that runs the model."""
    if compute_dtype(name) == torch.float32:
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=compute_dtype(name)):
        yield


def require_trainable(name: str) -> None:
    """Refuse a compute dtype the trainer cannot train in (one-line :class:`UserError`)."""
    if name == "float16":
        raise UserError("policy.dtype: float16 cannot train: fp16 compute needs loss scaling, which the trainer "
                        "does not do; use bfloat16 (same range as float32) or float32")
