"""Build a trajectory turn by turn without ever re-rendering it (token-in/token-out, issue 10.3).

    builder = TranscriptBuilder(chat, instruction, max_output_chars=50_000)
    turn = builder.add_action(sampled_ids, sampled_logprobs)     # ACTION tokens, exactly as sampled
    pieces = builder.observe(turn, parsed, exec_result, timeout_s) # turn facts + the observation's pieces
    builder.append(turn, pieces)                                   # TEMPLATE / WARNING / ENV tokens
    trajectory = builder.build(task_id=..., reward=..., ...)

The episode loop and the expert-transcript builder both go through this class, so a transcript recorded
from a reference solution is tokenised exactly like a sampled one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from echo_rl.harness.chat import ChatFormat, Piece
from echo_rl.harness.parse import ParsedAction
from echo_rl.harness.render import render_output
from echo_rl.rollout.trajectory import Trajectory, Turn
from echo_rl.roles import Role
from echo_rl.sandbox.base import ExecResult


class TranscriptBuilder:
    """One trajectory under construction. ``messages`` is the same conversation as chat messages (what
    text backends send); ``token_ids`` is what token backends continue."""

    def __init__(self, chat: ChatFormat, instruction: str, *, max_output_chars: int = 50_000) -> None:
        self.chat = chat
        self.max_output_chars = max_output_chars
        self.token_ids: list[int] = []
        self.roles: list[int] = []
        self.logprobs: list[float] = []
        self.turns: list[Turn] = []
        self.messages = [{"role": "system", "content": chat.system}, {"role": "user", "content": instruction}]
        prompt = chat.prompt(instruction)
        self._extend(prompt.role, prompt.ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    def _extend(self, role: Role, ids: Sequence[int], logprobs: Sequence[float] | None = None) -> None:
        self.token_ids += ids
        self.roles += [int(role)] * len(ids)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)

    def add_action(self, ids: Sequence[int], logprobs: Sequence[float] | None) -> Turn:
        """Append sampled ids as ACTION tokens (``logprobs`` None: recorded as 0.0) and open a turn whose
        ``action_text`` is their decoding without a final stop token."""
        start = len(self)
        self._extend(Role.ACTION, ids, logprobs)
        body = list(ids[:-1]) if ids and ids[-1] in self.chat.stop_ids else list(ids)
        turn = Turn(action_span=(start, len(self)), action_text=self.chat.decode(body))
        self.turns.append(turn)
        self.messages.append({"role": "assistant", "content": turn.action_text})
        return turn

    def observe(
        self, turn: Turn, parsed: ParsedAction, result: ExecResult | None, timeout_s: float | None = None
    ) -> list[Piece]:
        """Record what the harness made of ``turn`` (and what its command returned) on the turn, and return
        the observation's pieces (none after a done call). ``timeout_s`` is the command's time limit."""
        turn.command, turn.done, turn.warnings = parsed.command, parsed.done, list(parsed.warnings)
        if parsed.done:
            return []
        body = ""
        if result is not None:
            turn.output = result.output[: self.max_output_chars]
            turn.exit_code, turn.timed_out, turn.duration_s = result.exit_code, result.timed_out, result.duration_s
            body = render_output(
                result.output,
                result.exit_code,
                timed_out=result.timed_out,
                timeout_s=timeout_s,
                sandbox_truncated=result.truncated,
                max_chars=self.max_output_chars,
            )
        action_ids = self.token_ids[slice(*turn.action_span)]
        return self.chat.observation(
            turn.warnings, body, after_eot=bool(action_ids) and action_ids[-1] == self.chat.eot_id
        )

    def append(self, turn: Turn, pieces: Sequence[Piece]) -> None:
        """Append an observation's pieces and record their spans on ``turn``."""
        start = len(self)
        for piece in pieces:
            begin = len(self)
            self._extend(piece.role, piece.ids)
            if piece.role == Role.WARNING:
                turn.warning_span = (begin, len(self))
            elif piece.role == Role.ENV:
                turn.env_span = (begin, len(self))
        turn.observation_span = (start, len(self))
        content = "".join(piece.text for piece in pieces if piece.role in (Role.WARNING, Role.ENV))
        self.messages.append({"role": self.chat.observation_role, "content": content})

    def build(self, task_id: str, **fields: Any) -> Trajectory:
        """The trajectory so far; ``fields`` are the other :class:`Trajectory` fields."""
        return Trajectory(
            task_id=task_id,
            token_ids=list(self.token_ids),
            roles=list(self.roles),
            logprobs=list(self.logprobs),
            turns=self.turns,
            **fields,
        )
