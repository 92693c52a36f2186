"""Policy backends behind one interface (:class:`~echo_rl.rollout.policy.base.Policy`), sampling as a
:class:`~echo_rl.rollout.policy.base.SamplingParams` says.

``transformers`` (:mod:`.hf`, the default; local checkpoints or ``tiny``/``smollm2-135m``), ``openai``
(:mod:`.openai`, any OpenAI-compatible server; text only) and ``vllm`` (:mod:`.vllm`, import-guarded,
experimental). Every path builds its sampler with the one factory, :func:`echo_rl.train.policy_sync.make_policy`
(or ``load_policy``), so that every ``policy.*`` setting reaches it.
"""

from __future__ import annotations

from echo_rl.rollout.policy.base import Generation, Policy, SamplingParams

__all__ = ["Generation", "Policy", "SamplingParams"]
