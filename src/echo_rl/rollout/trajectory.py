"""A rollout as the trainer sees it: token ids with one role per token.

Roles (method §2; the objective selects its terms from them):

    PROMPT    system prompt + task instruction, as rendered by the chat template
    ACTION    tokens the policy sampled (thinking included) — the GRPO term's set A
    TEMPLATE  chat-template wrapper tokens (``<|im_start|>user\\n``, ``<|im_end|>\\n`` …), never targets
    WARNING   the harness's format-warnings block at the head of an observation
    ENV       the rest of the observation content: command output, truncation notice, exit-code line —
              the paper's O' (env-only targets). O = WARNING ∪ ENV.

``logprobs[i]`` is the log-probability the sampler gave ``token_ids[i]`` for ACTION tokens and 0.0
elsewhere. Invariant: ``len(token_ids) == len(roles) == len(logprobs)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, Literal

Outcome = Literal["solved", "failed", "agent_limit", "infra_error"]
StopReason = Literal[
    "done", "max_turns", "max_context_tokens", "max_turn_tokens", "agent_timeout", "env_setup_error", "error"
]


class Role(IntEnum):
    PROMPT = 0
    ACTION = 1
    TEMPLATE = 2
    WARNING = 3
    ENV = 4


Span = tuple[int, int]  # [start, end) token indices


@dataclass
class Turn:
    """One assistant turn and the observation that answered it (spans index ``Trajectory.token_ids``)."""

    action_span: Span
    action_text: str
    command: str | None = None
    done: bool = False
    warnings: list[str] = field(default_factory=list)
    observation_span: Span | None = None  # whole observation message, template wrapper included
    warning_span: Span | None = None
    env_span: Span | None = None
    output: str = ""  # terminal output as shown to the agent (after truncation)
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0

    @property
    def parse_ok(self) -> bool:
        """True when the harness found nothing to warn about in the action."""
        return not self.warnings


@dataclass
class Trajectory:
    task_id: str
    token_ids: list[int]
    roles: list[int]
    logprobs: list[float]
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    outcome: Outcome = "failed"
    verifier_reason: str = ""
    stop_reason: StopReason = "done"
    family: str | None = None
    split: str | None = None
    group_index: int = 0  # which sample of the task's group
    policy_step: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.token_ids) == len(self.roles) == len(self.logprobs):
            raise ValueError(
                f"trajectory {self.task_id}: {len(self.token_ids)} ids, {len(self.roles)} roles, "
                f"{len(self.logprobs)} logprobs"
            )

    @property
    def valid(self) -> bool:
        """False for infrastructure failures, which are excluded from groups and pass@k denominators."""
        return self.outcome != "infra_error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        data = dict(data)
        turns = []
        for turn in data.pop("turns", []):
            turn = dict(turn)
            for key in ("action_span", "observation_span", "warning_span", "env_span"):
                if turn.get(key) is not None:
                    turn[key] = tuple(turn[key])
            turns.append(Turn(**turn))
        return cls(turns=turns, **data)
