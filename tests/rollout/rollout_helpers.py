"""A scripted policy (a stand-in for a model whose outputs a test must choose) and small builders."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from echo_rl.config import RunConfig
from echo_rl.harness.chat import ChatFormat
from echo_rl.harness.render import render_output, system_prompt
from echo_rl.models.tokenizer import train_tokenizer
from echo_rl.rollout.policy.base import Generation, Policy

LOGPROB = -0.5


def tiny_chat(**harness: object) -> ChatFormat:
    texts = [system_prompt("qwen_xml")] + [render_output(f"key_{i}.txt code: {i}\n", 0) for i in range(100)]
    cfg = RunConfig.model_validate({"harness": harness})
    return ChatFormat.from_config(train_tokenizer(texts, vocab_size=512), cfg.harness)


def config(**sections: dict) -> RunConfig:
    """A run config with test-friendly sandbox settings and the given section overrides."""
    data = {"sandbox": {"retry_backoff_s": 0.0, "command_timeout_s": 10.0}, "episode": {"batch_wait_s": 2.0}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return RunConfig.model_validate(data)


class ScriptedPolicy(Policy):
    """Answers turn k of the episode whose instruction is ``key`` with ``scripts[key][k]`` (the last entry
    repeats), tokenised and ended by the end-of-turn token; every sampled token gets log-prob -0.5.
    ``fail_calls`` lists call numbers (0-based) that raise instead. ``calls`` records batch sizes."""

    def __init__(self, chat: ChatFormat, scripts: dict[str, list[str]], fail_calls: Collection[int] = ()) -> None:
        self.chat = chat
        self.scripts = scripts
        self.fail_calls = set(fail_calls)
        self.calls: list[int] = []
        self.sampled: dict[str, list[list[int]]] = {}

    def generate(
        self,
        prompts,
        max_new_tokens,
        sampling=None,
        *,
        conversations: Sequence[list[dict[str, str]]] | None = None,
        seeds=None,
    ) -> list[Generation]:
        self.calls.append(len(prompts))
        if len(self.calls) - 1 in self.fail_calls:
            raise RuntimeError("engine fell over")
        assert conversations is not None
        limits = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else max_new_tokens
        out = []
        for conversation, limit in zip(conversations, limits, strict=True):
            script = self.scripts[conversation[1]["content"]]
            turn = sum(m["role"] == "assistant" for m in conversation)
            ids = self.chat.tokenizer.encode(script[min(turn, len(script) - 1)], add_special_tokens=False)
            ids = ids + [self.chat.eot_id]
            finish = "stop" if len(ids) <= limit else "length"
            ids = ids[:limit]
            out.append(Generation(ids, [LOGPROB] * len(ids), finish))
        return out
