"""ECHO inside TRL: ``EchoGRPOTrainer`` = TRL's ``GRPOTrainer`` + λ·env CE on the tool-output tokens.

    from echo_rl.integrations.trl import EchoGRPOTrainer, EchoEnvironment
    trainer = EchoGRPOTrainer(model, args=GRPOConfig(...), train_dataset=rows_with_a_task_field,
                              environment_factory=EchoEnvironment, env_lambda=0.05)

Loss, per micro-batch of B completions (TRL's layout: completion tokens after the prompt):

    L = L_TRL + λ · L_env / G         L_env = :func:`echo_rl.loss.env_cross_entropy`(logprobs, O', normalizer)

L_TRL is TRL's own ``_compute_loss`` (whatever ``loss_type``, KL, entropy bonus), untouched; G is TRL's
``current_gradient_accumulation_steps`` in training (1 in evaluation), the same scaling TRL applies to its
"grpo" loss. O' = completion_mask · (1 − tool_mask): the tokens TRL's tool loop inserted from the tools'
results (rendered by the chat template), which TRL masks out of its own loss. Without tools O' is empty
and the env term is 0. ``env_normalizer`` "sequence" (default): each completion's env CE is a mean over its
own env tokens, then a mean over the B completions; "tokens": one mean over every env token of the
micro-batch (see :mod:`echo_rl.loss` on why λ is not portable between the two).

One forward pass. TRL's log-probs come from its fused LM head at τ = ``args.temperature`` (logits / τ, the
sampling temperature). ``env_temperature="sampling"`` (default, echo-rl's ``env.temperature_scaled``) takes
the env CE from those same log-probs, at no extra cost. ``env_temperature=1.0`` (or any τ') takes the
backbone's hidden states of that same pass (a forward hook) and projects only the env positions through the
LM head at τ' (echo-rl's chunked projection): one more [env tokens × V] projection, no second forward.

λ = 0 skips all of it: the loss and gradients are exactly ``GRPOTrainer``'s. Tested with TRL
``TESTED_TRL`` (the ``trl`` extra pins it); another version raises :class:`TRLVersionError` on import.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Literal

import torch
from torch import Tensor

from echo_rl.errors import UserError
from echo_rl.integrations.environment import EchoEnvironment, check_rows, environment_class
from echo_rl.loss import Normalizer, env_cross_entropy
from echo_rl.objective.logprobs import hidden_logprobs

TESTED_TRL = (">=1.16.0", "<1.17")


class TRLVersionError(UserError, ImportError):
    """TRL is missing, or is a version EchoGRPOTrainer was not tested with."""


def _check_trl() -> None:
    from packaging.version import Version

    try:
        version = Version(importlib.metadata.version("trl"))
    except importlib.metadata.PackageNotFoundError:
        raise TRLVersionError("EchoGRPOTrainer needs TRL: pip install 'echo-rl[trl]'") from None
    low, high = Version(TESTED_TRL[0][2:]), Version(TESTED_TRL[1][1:])
    if not low <= version < high:
        raise TRLVersionError(
            f"TRL {version} is installed; EchoGRPOTrainer is tested with trl{','.join(TESTED_TRL)} "
            "(pip install 'echo-rl[trl]')"
        )


_check_trl()

from trl import GRPOTrainer  # noqa: E402  (after the version check, which names the fix)

EnvTemperature = Literal["sampling"] | float


class EchoGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer plus λ·env CE from the same forward pass (module docstring). Extra keywords:
    ``env_lambda`` (λ ≥ 0), ``env_normalizer`` ("sequence" or "tokens"), ``env_temperature`` ("sampling" or
    a float τ')."""

    def __init__(
        self,
        *args: Any,
        env_lambda: float = 0.05,
        env_normalizer: Normalizer = "sequence",
        env_temperature: EnvTemperature = "sampling",
        **kwargs: Any,
    ) -> None:
        if env_lambda < 0:
            raise ValueError(f"env_lambda must be >= 0, got {env_lambda}")
        if env_normalizer not in ("sequence", "tokens"):
            raise ValueError(f'env_normalizer must be "sequence" or "tokens", got {env_normalizer!r}')
        if env_temperature != "sampling" and not (isinstance(env_temperature, float | int) and env_temperature > 0):
            raise ValueError(f'env_temperature must be "sampling" or a temperature > 0, got {env_temperature!r}')
        factory = kwargs.get("environment_factory")
        if isinstance(factory, type) and issubclass(factory, EchoEnvironment) and kwargs.get("train_dataset"):
            check_rows(kwargs["train_dataset"])
        super().__init__(*args, **kwargs)
        self.env_lambda = float(env_lambda)
        self.env_normalizer = env_normalizer
        self.env_temperature = env_temperature
        self._captured: dict[str, list[Tensor]] | None = None

    @property
    def _env_at_sampling_temperature(self) -> bool:
        return self.env_temperature == "sampling" or float(self.env_temperature) == float(self.temperature)

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
        out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._captured is not None:
            self._captured["logps"].append(out[0])
        return out

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> Tensor:
        if self.env_lambda == 0:
            return super()._compute_loss(model, inputs)
        self._captured = {"logps": [], "hidden": []}
        hook = None
        if not self._env_at_sampling_temperature:
            backbone = self._causal_lm(model).base_model
            hook = backbone.register_forward_hook(
                lambda _m, _a, out: self._captured["hidden"].append(out.last_hidden_state)
            )
        try:
            loss = super()._compute_loss(model, inputs)
            captured = self._captured
        finally:
            self._captured = None
            if hook is not None:
                hook.remove()
        env_mask = self.env_mask(inputs)
        logprobs = (
            torch.cat(captured["logps"])
            if self._env_at_sampling_temperature
            else self._raw_env_logprobs(model, torch.cat(captured["hidden"]), inputs, env_mask)
        )
        env_loss = env_cross_entropy(logprobs, env_mask, self.env_normalizer)
        mode = "train" if self.model.training else "eval"
        scale = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        with torch.no_grad():
            tokens = env_mask.sum().clamp(min=1)
            self._metrics[mode]["echo/env_loss"].append(env_loss.item())
            self._metrics[mode]["echo/env_ce"].append(float((-logprobs * env_mask).sum() / tokens))
            self._metrics[mode]["echo/env_tokens"].append(float(env_mask.sum()))
        return loss + self.env_lambda * env_loss / scale

    def _causal_lm(self, model: torch.nn.Module) -> torch.nn.Module:
        """The transformers causal LM inside accelerate's (and PEFT's) wrappers, as TRL patches it."""
        module = self.accelerator.unwrap_model(model)
        return module.get_base_model() if hasattr(module, "get_base_model") else module

    @staticmethod
    def env_mask(inputs: dict[str, Any]) -> Tensor:
        """O' [B, C] over the completion tokens: real tokens that the tool loop inserted (tool_mask 0)."""
        completion_mask = inputs["completion_mask"].bool()
        tool_mask = inputs.get("tool_mask")
        if tool_mask is None:
            return torch.zeros_like(completion_mask)
        return completion_mask & ~tool_mask.bool()

    def _raw_env_logprobs(self, model: torch.nn.Module, hidden: Tensor, inputs: dict[str, Any], env_mask: Tensor):
        """log p at τ' of the env tokens, from the pass's hidden states: position P−1+j predicts completion j."""
        prompt_len = inputs["prompt_ids"].shape[1]
        completion_ids = inputs["completion_ids"]
        states = hidden[:, prompt_len - 1 : prompt_len - 1 + completion_ids.shape[1]][env_mask]
        head = self._causal_lm(model).get_output_embeddings()
        values = hidden_logprobs(states, head.weight, completion_ids[env_mask], float(self.env_temperature))
        return values.new_zeros(env_mask.shape).masked_scatter(env_mask, values)


__all__ = ["TESTED_TRL", "EchoEnvironment", "EchoGRPOTrainer", "TRLVersionError", "environment_class"]
