"""The vLLM backend (optional extra ``vllm``, GPU machines; never needed by the tests).

Token ids in, token ids out, as the transformers backend. Log-probs: the engine is asked for
``processed_logprobs``, i.e. after temperature AND top-k/top-p, so with truncation they are the
renormalised nucleus distribution and differ from the trainer's full-vocabulary values (the trainer logs
the mismatch and can correct it with truncated importance sampling, ``objective.tis_cap``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from echo_rl.errors import UserError
from echo_rl.rollout.policy.base import Generation, Policy, per_prompt, prompt_seeds


class VLLMPolicy(Policy):
    exact_logprobs = False

    def __init__(self, model_path: str, *, dtype: str = "bfloat16", seed: int = 0) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise UserError("policy.backend=vllm needs vLLM (pip install 'echo-rl[vllm]', GPU machines)") from None
        self.llm = LLM(model=model_path, dtype=dtype, seed=seed, logprobs_mode="processed_logprobs")

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        stop_token_ids: Collection[int] = (),
        conversations: Sequence[list[dict[str, str]]] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                max_tokens=limit,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k if top_k > 0 else -1,
                stop_token_ids=sorted(stop_token_ids),
                logprobs=0,
                detokenize=False,
                seed=seed,
            )
            for limit, seed in zip(per_prompt(max_new_tokens, len(prompts)), prompt_seeds(seeds, len(prompts)), strict=True)
        ]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        generations = []
        for output in outputs:
            sample = output.outputs[0]
            ids = list(sample.token_ids)
            logprobs = [step[token].logprob for step, token in zip(sample.logprobs or [], ids, strict=True)]
            finish = "length" if sample.finish_reason == "length" else "stop"
            generations.append(Generation(ids, logprobs, finish))
        return generations
