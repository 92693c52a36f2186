"""π_ref of the KL term (``objective.kl_coef`` > 0): a frozen copy of the run's starting policy.

Loaded once per run, from the starting model (``policy.model``, also on a resumed run, whose trained
weights come from its checkpoint), held in the compute dtype (``policy.dtype``: half the memory of the
float32 master at bfloat16) with gradients off. Its log-probs are computed in each update without
gradient, over the update's micro-batches and under the same compute precision as the trainer's
(:func:`echo_rl.objective.frozen_logprobs`). ``kl_coef`` = 0 loads nothing.

A LoRA run needs no copy: the reference is the trained module with its adapters disabled —
``Reference(peft_model, dtype, context=peft_model.disable_adapter)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from echo_rl.objective.batch import Batch
from echo_rl.config import RunConfig
from echo_rl.objective import frozen_logprobs
from echo_rl.models.load import load_policy_model
from echo_rl.train.precision import compute_autocast
from echo_rl.train.session import resolve_model_spec


@dataclass
class Reference:
    """A frozen model scoring batches for the KL term; ``context`` is entered around each pass."""

    model: torch.nn.Module
    dtype: str  # compute precision, a policy.dtype name
    context: Callable[[], AbstractContextManager[object]] = field(default=contextlib.nullcontext)

    def logprobs(self, batch: Batch, cfg: RunConfig, device: torch.device | str) -> Tensor:
        """[B, T] log π_ref of ``batch`` (the policy term's temperature), on the CPU."""
        with self.context(), compute_autocast(self.dtype, device):
            return frozen_logprobs(self.model, batch, cfg.objective, cfg.train.micro_batch_size, device)


def load_reference(cfg: RunConfig, spec: str, device: torch.device | str) -> Reference | None:
    """The reference of a run starting from ``spec``, or None when ``objective.kl_coef`` is 0."""
    if cfg.objective.kl_coef == 0:
        return None
    model, _ = load_policy_model(resolve_model_spec(spec), dtype=cfg.policy.dtype, device=str(device))
    model.requires_grad_(False)
    return Reference(model, cfg.policy.dtype)
