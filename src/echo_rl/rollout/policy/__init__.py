"""Policy backends behind one interface (:class:`~echo_rl.rollout.policy.base.Policy`).

    policy, tokenizer = build_policy(cfg)        # cfg.policy picks backend and model

``transformers`` (:mod:`.hf`, the default; local checkpoints or ``tiny``/``smollm2-135m``), ``openai``
(:mod:`.openai`, any OpenAI-compatible server; text only) and ``vllm`` (:mod:`.vllm`, import-guarded,
experimental). A trainer that samples from the model it trains wraps it directly: ``TransformersPolicy(model, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.rollout.policy.base import Generation, Policy

if TYPE_CHECKING:  # torch and transformers load with the backend that needs them
    from transformers import PreTrainedTokenizerBase

__all__ = ["Generation", "Policy", "build_policy"]


def build_policy(cfg: RunConfig) -> tuple[Policy, PreTrainedTokenizerBase]:
    """The policy ``cfg.policy`` describes and the tokenizer episodes use with it."""
    from echo_rl.models.load import load_policy_model, load_tokenizer, resolve_checkpoint

    pc = cfg.policy
    if pc.threads is not None:
        import torch

        torch.set_num_threads(pc.threads)
    if pc.backend == "transformers":
        from echo_rl.rollout.policy.hf import TransformersPolicy

        model, tokenizer = load_policy_model(pc.model, dtype=pc.dtype, device=pc.device)
        policy = TransformersPolicy(
            model, pad_token_id=tokenizer.pad_token_id, seed=cfg.seed, prefix_cache_mb=pc.prefix_cache_mb
        )
        return policy, tokenizer
    tokenizer = load_tokenizer(pc.model)
    if pc.backend == "openai":
        from echo_rl.rollout.policy.openai import OpenAIPolicy

        if not pc.endpoint:
            raise UserError("policy.endpoint: required for policy.backend=openai")
        name = pc.served_model_name or pc.model
        policy = OpenAIPolicy(
            pc.endpoint, name, tokenizer, api=pc.http_api, api_key_env=pc.api_key_env, timeout_s=pc.request_timeout_s
        )
        return policy, tokenizer
    from echo_rl.rollout.policy.vllm import VLLMPolicy

    return VLLMPolicy(str(resolve_checkpoint(pc.model)), cfg, seed=cfg.seed), tokenizer
