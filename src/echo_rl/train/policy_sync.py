"""The one sampler factory, and keeping the sampler's weights equal to the trained model's.

Every path that samples — training, SFT evaluation, ``echo-rl eval``, ``echo-rl rollout``, the demo —
builds its sampler with :func:`make_policy` (a model already in memory) or :func:`load_policy` (loads
``policy.model`` first), so every ``policy.*`` setting reaches every path: ``backend``, ``dtype`` (compute
precision), ``prefix_cache_mb``, ``threads``, the endpoint settings, ``vllm.*``; the sampler's seed is
``seed``.

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

from echo_rl.models.load import load_policy_model, load_tokenizer, resolve_checkpoint

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.rollout.policy.base import Policy
from echo_rl.rollout.policy.vllm import VLLMPolicy
from echo_rl.train.precision import compute_autocast

_PEFT_PREFIX = "base_model.model."


def make_policy(cfg: RunConfig, model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase, *,
                model_path: str | None = None, training: bool = False) -> Policy:
    """The sampler ``cfg.policy`` describes (module docstring). ``transformers`` samples from ``model``
    (required; a LoRA model through its base, adapters in place), computing in ``policy.dtype`` when its
    weights are float32; ``vllm`` loads an engine from ``model_path`` (default ``policy.model``); ``openai``
    needs no model. ``training`` refuses backends whose weights the trainer cannot update."""
    pc = cfg.policy
    if pc.threads is not None:
        torch.set_num_threads(pc.threads)
    if pc.backend == "transformers":
        from echo_rl.rollout.policy.hf import TransformersPolicy

        if model is None:
            raise ValueError("policy.backend=transformers samples from a model: pass it")
        weights = next(model.parameters())
        precision = pc.dtype if weights.dtype == torch.float32 else "float32"  # already loaded in it: as is
        sampled = model.get_base_model() if hasattr(model, "peft_config") else model  # LoRA: adapters in place
        return TransformersPolicy(sampled, pad_token_id=tokenizer.pad_token_id, seed=cfg.seed,
                                  prefix_cache_mb=pc.prefix_cache_mb, threads=pc.sampling_threads,
                                  compute=functools.partial(compute_autocast, precision, weights.device))
    if pc.backend == "vllm":
        return VLLMPolicy(str(resolve_checkpoint(model_path or pc.model)), cfg, seed=cfg.seed)
    if training:
        raise UserError(f"policy.backend={pc.backend} cannot be trained (use transformers or vllm)")
    from echo_rl.rollout.policy.openai import OpenAIPolicy

    if not pc.endpoint:
        raise UserError("policy.endpoint: required for policy.backend=openai")
    return OpenAIPolicy(pc.endpoint, pc.served_model_name or pc.model, tokenizer, api=pc.http_api,
                        api_key_env=pc.api_key_env, timeout_s=pc.request_timeout_s)


def load_policy(cfg: RunConfig) -> tuple[Policy, PreTrainedTokenizerBase]:
    """Load ``policy.model`` (a checkpoint, ``tiny``, ``smollm2-135m``) — in ``policy.dtype`` on
    ``policy.device`` for the transformers backend, its tokenizer alone for the others — and make its
    sampler (:func:`make_policy`); returns it with the tokenizer episodes use."""
    spec = cfg.policy.model
    if cfg.policy.backend != "transformers":
        tokenizer = load_tokenizer(spec)
        return make_policy(cfg, None, tokenizer, model_path=spec), tokenizer
    loaded, tokenizer = load_policy_model(spec, dtype=cfg.policy.dtype, device=cfg.policy.device)
    return make_policy(cfg, loaded, tokenizer), tokenizer


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
