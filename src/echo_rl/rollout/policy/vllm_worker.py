"""The worker extension echo-rl gives vLLM's workers (``LLM(worker_extension_cls=WORKER_EXTENSION)``).

vLLM resolves the dotted path :data:`WORKER_EXTENSION` in every worker and adds the class to the worker's
bases, so its methods run on the worker (``self.model_runner.model`` is the engine's model) when the
trainer calls ``llm.collective_rpc("<method name>", args=...)``. Only method NAMES and named tensors cross
that boundary — no closures, no pickled state dicts. With the engine in the trainer's process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``, as :mod:`echo_rl.rollout.policy.vllm` sets), ``collective_rpc``
calls the method directly and the tensors are passed by reference.

Contract of :meth:`WeightSyncExtension.echo_rl_load_weights`: ``weights`` is a list of
``(checkpoint name, tensor)`` pairs, names as in the Hugging Face checkpoint the engine loaded
(``model.layers.0.self_attn.q_proj.weight``); they go to the model's own
``load_weights(weights=...)``, the loader vLLM uses for checkpoints, which maps them onto its fused
parameters (q/k/v → qkv_proj, gate/up → gate_up_proj). Method names carry an ``echo_rl_`` prefix: vLLM
refuses an extension whose attribute names collide with the worker's (``update_weights`` is vLLM's own).

This module imports neither vLLM nor anything that needs a GPU, so the contract is testable anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

WORKER_EXTENSION = f"{__name__}.WeightSyncExtension"


class WeightSyncExtension:
    """Mixed into vLLM's worker class; ``self.model_runner`` is the worker's (vLLM sets it)."""

    model_runner: Any

    def echo_rl_load_weights(self, weights: Sequence[tuple[str, torch.Tensor]]) -> int:
        """Load ``weights`` (module docstring) into the engine's model; return how many tensors arrived."""
        self.model_runner.model.load_weights(weights=list(weights))
        return len(weights)

    def echo_rl_weight_checksum(self) -> float:
        """Σ over the engine's parameters of Σ|p| in float64: a cheap check that a sync changed the weights."""
        with torch.no_grad():
            return float(sum(p.detach().double().abs().sum() for p in self.model_runner.model.parameters()))
