"""Token-exact chat-template pieces for an agent episode (token-in/token-out, issue 10.3).

An episode never re-renders its history. It starts from the rendered prompt, appends the token ids the
policy sampled, and after each action appends the tokens of ONE observation message as the tokenizer's
chat template would write it after an assistant turn:

    …sampled ids <|im_end|> │ ⏎<|im_start|>tool⏎ │ WARNINGS:… │ output… │ <|im_end|>⏎<|im_start|>assistant⏎
          ACTION                TEMPLATE          WARNING      ENV              TEMPLATE

The wrapper is found exactly, once, by rendering a probe conversation whose assistant and observation
contents are sentinels; each observation's content span is then the rendered tail between that wrapper's
prefix and suffix (so a template that trims content is honoured: the span holds what the model sees).
Template text is tokenised with special tokens recognised; observation content with special tokens split
(a ``<|im_end|>`` printed by a command stays plain bytes). Warning and output parts are tokenised apart,
so their boundary is a token boundary. At start-up :class:`ChatFormat` checks that the tokenizer decodes
concatenated pieces byte-exactly and whether the template is prefix-stable over a conversation.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from echo_rl.config import HarnessConfig
from echo_rl.errors import UserError
from echo_rl.harness.parse import ActionFormat
from echo_rl.harness.render import render_action, render_output, system_prompt
from echo_rl.harness.warnings import MISSING_THINK, render_warnings
from echo_rl.roles import Role
from echo_rl.sequences import common_prefix

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

_A = "@@ECHO-ASSISTANT-SENTINEL@@"  # probe contents (no whitespace a template could trim)
_O = "@@ECHO-OBSERVATION-SENTINEL@@"


@dataclass(frozen=True)
class Piece:
    """A run of tokens with one role; ``text`` is exactly ``decode(ids)``."""

    role: Role
    ids: list[int]
    text: str


@dataclass(frozen=True)
class PrefixReport:
    """Whether rendering a whole conversation equals the turn-by-turn token stream episodes build."""

    stable: bool
    detail: str


class ChatFormat:
    """The chat template of ``tokenizer`` cut into the pieces an episode appends.

    ``observation_role``: ``"tool"``, ``"user"`` or ``"auto"`` (tool when the template mentions it).
    Raises :class:`UserError` for a tokenizer without a chat template or one that is not byte-exact.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        action_format: ActionFormat = "qwen_xml",
        *,
        require_think: bool = True,
        observation_role: str = "auto",
        system: str | None = None,
    ) -> None:
        if not tokenizer.chat_template:
            raise UserError("tokenizer has no chat template", where=str(tokenizer.name_or_path or "tokenizer"))
        self.tokenizer = tokenizer
        self.action_format = action_format
        self.require_think = require_think
        self.system = system if system is not None else system_prompt(action_format, require_think)
        self.observation_role = self._resolve_role(observation_role)
        close = self._render([*self._head("task"), _msg("assistant", _A)])
        self.assistant_close = close[close.index(_A) + len(_A) :]
        self.observation_prefix, self.observation_suffix = self._wrapper()
        first = self.tokenizer.encode(self.assistant_close, add_special_tokens=False)[:1]
        special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
        self.eot_id: int | None = first[0] if first and first[0] in special else None
        self.eot_text = self.decode([self.eot_id]) if self.eot_id is not None else ""
        self.stop_ids = frozenset(i for i in (self.eot_id, tokenizer.eos_token_id) if i is not None)
        self.prefix_report = self._check_prefix_stability()

    @classmethod
    def from_config(cls, tokenizer: PreTrainedTokenizerBase, cfg: HarnessConfig) -> ChatFormat:
        return cls(
            tokenizer,
            cfg.action_format,
            require_think=cfg.require_think,
            observation_role=cfg.observation_role,
            system=cfg.system_prompt,
        )

    # -- rendering -----------------------------------------------------------------------------------------

    def _render(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def _head(self, instruction: str) -> list[dict[str, str]]:
        return [_msg("system", self.system), _msg("user", instruction)]

    def _resolve_role(self, requested: str) -> str:
        if requested != "auto":
            return requested
        template = self.tokenizer.chat_template
        text = template if isinstance(template, str) else " ".join(template.values())
        if "tool" not in text:
            return "user"
        try:
            rendered = self._render([*self._head("task"), _msg("assistant", _A), _msg("tool", _O)])
        except Exception:  # noqa: BLE001 - a template may raise on any role it does not know
            return "user"
        return "tool" if _O in rendered else "user"

    def _tail(self, content: str) -> str:
        """Everything the template writes after the assistant's content when ``content`` answers it."""
        messages = [*self._head("task"), _msg("assistant", _A), _msg(self.observation_role, content)]
        text = self._render(messages, generation_prompt=True)
        return text[text.index(_A) + len(_A) :]

    def _wrapper(self) -> tuple[str, str]:
        tail = self._tail(_O)
        if tail.count(_O) != 1 or not tail.startswith(self.assistant_close):
            raise UserError("chat template does not render an observation after an assistant turn verbatim")
        before, after = tail.split(_O)
        return before[len(self.assistant_close) :], after

    # -- pieces --------------------------------------------------------------------------------------------

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def piece(self, role: Role, text: str, content: bool) -> Piece:
        """``text`` as one piece; ``content`` (observation text) tokenises special-token text as plain bytes."""
        if content:
            ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        else:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        return Piece(role, ids, self.decode(ids))

    def prompt(self, instruction: str) -> Piece:
        """System prompt + task instruction + generation prompt, all PROMPT tokens."""
        return self.piece(Role.PROMPT, self._render(self._head(instruction), generation_prompt=True), False)

    def observation(self, warnings: list[str], output: str, *, after_eot: bool) -> list[Piece]:
        """The observation message answering an action: TEMPLATE, [WARNING], [ENV], TEMPLATE pieces.
        ``after_eot``: the action's last sampled token was the end-of-turn token, so only the rest of the
        assistant's closing text is template; otherwise the whole closing text is."""
        block = render_warnings(warnings)
        tail = self._tail(block + output)
        if not (
            tail.startswith(self.assistant_close + self.observation_prefix) and tail.endswith(self.observation_suffix)
        ):
            raise UserError("chat template wraps observations differently depending on their content")
        content = tail[
            len(self.assistant_close) + len(self.observation_prefix) : len(tail) - len(self.observation_suffix)
        ]
        split = common_prefix(content, block)
        close = self.assistant_close[len(self.eot_text) :] if after_eot else self.assistant_close
        pieces = [
            self.piece(Role.TEMPLATE, close + self.observation_prefix, False),
            self.piece(Role.WARNING, content[:split], True),
            self.piece(Role.ENV, content[split:], True),
            self.piece(Role.TEMPLATE, self.observation_suffix, False),
        ]
        return [piece for piece in pieces if piece.ids]

    # -- start-up check ------------------------------------------------------------------------------------

    def _check_prefix_stability(self) -> PrefixReport:
        """Render a two-turn probe conversation whole and compare it with the turn-by-turn stream; also
        verify that the tokenizer decodes the concatenated pieces byte-exactly."""
        think = "Look around first." if self.require_think else None
        actions = [
            render_action(self.action_format, "ls", think),
            render_action(self.action_format, "cat a.txt", think),
        ]
        outputs = [render_output("a.txt\n", 0), render_output("cat: a.txt: Permission denied\n", 1)]
        warnings = [[], [MISSING_THINK]]
        messages = self._head("List the files.")
        pieces = [self.prompt("List the files.")]
        for action, output, warn in zip(actions, outputs, warnings, strict=True):
            messages += [_msg("assistant", action), _msg(self.observation_role, render_warnings(warn) + output)]
            pieces.append(self.piece(Role.ACTION, action + self.eot_text, False))
            pieces += self.observation(warn, output, after_eot=self.eot_id is not None)
        stream = "".join(piece.text for piece in pieces)
        if self.decode([i for piece in pieces for i in piece.ids]) != stream:
            raise UserError("tokenizer does not decode concatenated pieces byte-exactly (needs a byte-level BPE)")
        whole = self._render(messages, generation_prompt=True)
        if whole == stream:
            report = PrefixReport(True, "chat template is prefix-stable: re-rendering history changes nothing")
            log.info(report.detail)
            return report
        at = common_prefix(whole, stream)
        around = slice(max(0, at - 20), at + 20)
        report = PrefixReport(
            False,
            f"chat template is not prefix-stable: re-rendering the conversation differs from the turn-by-turn "
            f"stream at character {at} ({whole[around]!r} vs {stream[around]!r}), "
            "e.g. earlier <think> blocks dropped or separators changed; episodes never re-render history "
            "(they append sampled ids and observation wrappers), so trained ids equal sampled ids",
        )
        log.warning(report.detail)
        return report


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def tokenizer_fingerprint(chat: ChatFormat) -> str:
    """A hash of the tokenizer's vocabulary and merges and of the chat template."""
    tokenizer = chat.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256((text + str(tokenizer.chat_template)).encode()).hexdigest()[:16]
