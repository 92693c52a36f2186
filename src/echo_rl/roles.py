"""The role of every token of a rollout (a bottom module: the harness, rollout, batch and objective read it).

Roles (method §2; the objective selects its terms from them):

    PROMPT    system prompt + task instruction, as rendered by the chat template
    ACTION    tokens the policy sampled (thinking included) — the GRPO term's set A
    TEMPLATE  chat-template wrapper tokens (``<|im_start|>user\\n``, ``<|im_end|>\\n`` …), never targets
    WARNING   the harness's format-warnings block at the head of an observation
    ENV       the rest of the observation content: command output, truncation notice, exit-code line —
              the paper's O' (env-only targets). O = WARNING ∪ ENV.
"""

from enum import IntEnum


class Role(IntEnum):
    PROMPT = 0
    ACTION = 1
    TEMPLATE = 2
    WARNING = 3
    ENV = 4
