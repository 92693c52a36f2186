"""The sampler the trainer rolls out with, and keeping its weights equal to the trained model's.

``transformers`` samples from the trained module itself (nothing to sync), in the trainer's compute
precision (``policy.dtype``, :mod:`echo_rl.train.precision`). ``vllm`` (extra ``vllm``, GPU
machines) runs a separate engine loaded from the starting checkpoint; after every optimizer update the
trainer pushes the new weights into it with :func:`sync_weights`. ``openai`` serves a model the trainer
cannot update, so it may evaluate but not train.
"""

from __future__ import annotations

import functools

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.rollout.policy.base import Policy
from echo_rl.train.precision import compute_autocast


def make_policy(cfg: RunConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_path: str, *,
                training: bool, seed: int) -> Policy:
    """The rollout policy of ``cfg.policy.backend`` for ``model`` (loaded from ``model_path``); ``training``
    refuses backends whose weights the trainer cannot update. ``seed`` seeds the sampler."""
    backend = cfg.policy.backend
    if backend == "transformers":
        from echo_rl.rollout.policy.hf import TransformersPolicy

        compute = functools.partial(compute_autocast, cfg.policy.dtype, next(model.parameters()).device)
        return TransformersPolicy(model, pad_token_id=tokenizer.pad_token_id, seed=seed, compute=compute)
    if backend == "vllm":
        from echo_rl.models.load import resolve_checkpoint
        from echo_rl.rollout.policy.vllm import VLLMPolicy

        return VLLMPolicy(str(resolve_checkpoint(model_path)), dtype=cfg.policy.dtype, seed=seed)
    if training:
        raise UserError(f"policy.backend={backend} cannot be trained (use transformers or vllm)")
    from echo_rl.rollout.policy import build_policy

    return build_policy(cfg)[0]


def sync_weights(policy: Policy, model: PreTrainedModel) -> None:
    """Push ``model``'s current weights into a separate inference engine (vLLM); no-op otherwise."""
    llm = getattr(policy, "llm", None)
    if llm is None:
        return
    weights = [(name, tensor.detach()) for name, tensor in model.state_dict().items()]
    if hasattr(llm, "collective_rpc"):  # vLLM >= 0.7: runs on every worker, the worker as argument

        def load(worker: object) -> None:
            worker.model_runner.model.load_weights(weights)  # type: ignore[attr-defined]

        llm.collective_rpc(load)
    else:
        llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights(weights)
