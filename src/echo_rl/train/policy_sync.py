"""The sampler the trainer rolls out with, and keeping its weights equal to the trained model's.

``transformers`` samples from the trained module itself (nothing to sync), in the trainer's compute
precision (``policy.dtype``, :mod:`echo_rl.train.precision`). ``vllm`` (EXPERIMENTAL, extra ``vllm``, GPU
machines) runs a colocated engine loaded from the starting checkpoint: before every optimizer update the
trainer lets it free its GPU memory (:func:`release_for_update`, vLLM sleep mode), after it pushes the new
weights into it (:func:`sync_weights`): named tensors, in chunks, through the worker extension, then the
engine's prefix cache is reset. ``openai`` serves a model the trainer cannot update, so it may evaluate
but not train.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.rollout.policy.base import Policy
from echo_rl.rollout.policy.vllm import VLLMPolicy
from echo_rl.train.precision import compute_autocast

_PEFT_PREFIX = "base_model.model."


def make_policy(cfg: RunConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_path: str, *,
                training: bool, seed: int) -> Policy:
    """The rollout policy of ``cfg.policy.backend`` for ``model`` (loaded from ``model_path``); ``training``
    refuses backends whose weights the trainer cannot update. ``seed`` seeds the sampler."""
    backend = cfg.policy.backend
    if backend == "transformers":
        from echo_rl.rollout.policy.hf import TransformersPolicy

        compute = functools.partial(compute_autocast, cfg.policy.dtype, next(model.parameters()).device)
        sampled = model.get_base_model() if hasattr(model, "peft_config") else model  # LoRA: adapters in place
        return TransformersPolicy(sampled, pad_token_id=tokenizer.pad_token_id, seed=seed, compute=compute)
    if backend == "vllm":
        from echo_rl.models.load import resolve_checkpoint

        return VLLMPolicy(str(resolve_checkpoint(model_path)), cfg, seed=seed)
    if training:
        raise UserError(f"policy.backend={backend} cannot be trained (use transformers or vllm)")
    from echo_rl.rollout.policy import build_policy

    return build_policy(cfg)[0]


def checkpoint_name(name: str) -> str | None:
    """The Hugging Face checkpoint name of state-dict entry ``name``: a peft model's base weights lose the
    ``base_model.model.`` prefix and ``.base_layer``; its adapter tensors (``lora_*``) have none (None)."""
    if not name.startswith(_PEFT_PREFIX):
        return name
    if ".lora_" in name:
        return None
    return name.removeprefix(_PEFT_PREFIX).replace(".base_layer.", ".")


def checkpoint_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``model``'s weights as ``(checkpoint name, full tensor)``, one at a time. A sharded (FSDP2, DTensor)
    entry is gathered when it is reached — a collective, so every rank iterates in the same order."""
    from torch.distributed.tensor import DTensor

    for name, tensor in model.state_dict().items():
        target = checkpoint_name(name)
        if target is not None:
            yield target, tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


@contextlib.contextmanager
def merged_adapters(model: torch.nn.Module) -> Iterator[None]:
    """Inside, a peft model's weights include its adapters (W + alpha/r · B·A); plain models unchanged."""
    if not hasattr(model, "merge_adapter"):
        yield
        return
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def release_for_update(policy: Policy) -> None:
    """Before an optimizer update: a colocated engine frees its GPU memory (vLLM sleep mode)."""
    if isinstance(policy, VLLMPolicy):
        policy.sleep()


def sync_weights(policy: Policy, model: torch.nn.Module) -> None:
    """Push ``model``'s current (merged) weights into a separate inference engine (vLLM) and reset its
    prefix cache; no-op for a policy that samples from ``model`` itself."""
    if isinstance(policy, VLLMPolicy):
        with torch.no_grad(), merged_adapters(model):
            policy.load_weights(checkpoint_weights(model))
