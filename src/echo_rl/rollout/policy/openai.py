"""An OpenAI-compatible HTTP backend (vLLM/SGLang/llama.cpp servers, hosted APIs): text in, text out.

For evaluating served models and for the solvability filter. ``api="chat"`` posts the episode's messages
to ``/chat/completions`` (the server applies its own chat template; observation messages are sent with
the ``user`` role); ``api="completions"`` posts the decoded prompt ids to ``/completions`` with the stop
tokens' text as stop strings. The reply text is tokenised with the local tokenizer so the episode can
record it; its end-of-turn token is not in the reply (the episode's template piece adds it). There are no
sampling log-probs (``Generation.logprobs`` is None): trajectories from this backend are for evaluation,
not for policy-gradient training. Requests of one call run concurrently on threads.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase

from echo_rl.errors import EchoRLError
from echo_rl.rollout.policy.base import Generation, Policy, SamplingParams, per_prompt, prompt_seeds


class EndpointError(EchoRLError):
    """The server failed or answered something that is not a completion (an infrastructure error)."""


class OpenAIPolicy(Policy):
    def exact_logprobs(self, sampling: SamplingParams) -> bool:  # servers send no log-probs
        return False

    def __init__(
        self,
        endpoint: str,
        model_name: str,
        tokenizer: PreTrainedTokenizerBase,
        *,
        api: Literal["chat", "completions"] = "chat",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 600.0,
        max_parallel: int = 32,
    ) -> None:
        self.url = endpoint.rstrip("/") + ("/chat/completions" if api == "chat" else "/completions")
        self.model_name = model_name
        self.tokenizer = tokenizer
        self.api = api
        self.api_key = os.environ.get(api_key_env)
        self.timeout_s = timeout_s
        self.pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="echo-rl-http")

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        sampling: SamplingParams = SamplingParams(),
        *,
        conversations: Sequence[list[dict[str, str]]] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        limits, row_seeds = per_prompt(max_new_tokens, len(prompts)), prompt_seeds(seeds, len(prompts))
        if self.api == "chat" and (conversations is None or len(conversations) != len(prompts)):
            raise ValueError("the chat API needs one conversation per prompt")
        common: dict[str, Any] = {"model": self.model_name, "temperature": sampling.temperature, "top_p": sampling.top_p}
        if sampling.top_k > 0:
            common["top_k"] = sampling.top_k  # an extension that vLLM and SGLang accept
        bodies = []
        for i, prompt in enumerate(prompts):
            body = {**common, "max_tokens": limits[i]}
            if row_seeds[i] is not None:
                body["seed"] = row_seeds[i]
            if self.api == "chat":
                body["messages"] = [
                    {"role": "user" if m["role"] == "tool" else m["role"], "content": m["content"]}
                    for m in conversations[i]  # type: ignore[index]
                ]
            else:
                body["prompt"] = self.tokenizer.decode(list(prompt), skip_special_tokens=False)
                body["stop"] = [self.tokenizer.decode([t]) for t in sorted(sampling.stop_token_ids)] or None
            bodies.append(body)
        return list(self.pool.map(self._complete, bodies))

    def _complete(self, body: dict[str, Any]) -> Generation:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read())
            choice = reply["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
            raise EndpointError(f"{self.url}: {type(err).__name__}: {err}") from None
        ids = self.tokenizer.encode(text or "", add_special_tokens=False)
        return Generation(ids, None, "length" if choice.get("finish_reason") == "length" else "stop")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
