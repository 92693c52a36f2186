"""Turn model text into at most one shell command (method §4). Parsers never raise.

Three action formats (``HarnessConfig.action_format``), each with an optional ``<think>…</think>`` first:

    qwen_xml     <tool_call><function=bash><parameter=command>CMD</parameter></function></tool_call>
                 done: <tool_call><function=done></function></tool_call>
    plain        <command>CMD</command>            done: <action>done</action>
    hermes_json  <tool_call>{"name": "bash", "arguments": {"command": "CMD"}}</tool_call>
                 done: <tool_call>{"name": "done", "arguments": {}}</tool_call>

Contract of :func:`parse_action`: the text is scanned once for the format's tags; the contents of
``<think>``, ``<parameter=…>``, ``<command>``, ``<action>`` (and Hermes' ``<tool_call>``) are raw text up
to their own closing tag. A *call* is a ``<function=…>`` element (qwen_xml, wherever it sits), a
``<command>``/``<action>`` element (plain), or a ``<tool_call>`` element (hermes_json). The first *valid*
call decides the action — a closed, non-empty command (surrounding whitespace stripped) or done — and
only it runs. Everything irregular becomes a warning (see :mod:`echo_rl.harness.warnings`), never an
exception: structure problems alone do not stop a valid command from running.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from echo_rl.harness import warnings as W

ActionFormat = Literal["qwen_xml", "plain", "hermes_json"]


@dataclass(frozen=True)
class ParsedAction:
    """What the harness made of one assistant turn."""

    command: str | None
    done: bool
    warnings: tuple[str, ...]

    @property
    def rejected(self) -> bool:
        """Nothing to run and not done: the harness answers with warnings only."""
        return self.command is None and not self.done


@dataclass(frozen=True)
class _Spec:
    raw: frozenset[str]  # tags whose content is raw text up to their closing tag
    parents: dict[str, frozenset[str]]  # allowed parent tags ("" = top level)
    calls: frozenset[str]
    containers: frozenset[str] = frozenset()  # non-raw tags that must not be empty

    @property
    def tag_re(self) -> re.Pattern[str]:
        return _tag_re(tuple(sorted(self.parents)))


_TOP = frozenset({""})
_SPECS: dict[str, _Spec] = {
    "qwen_xml": _Spec(
        raw=frozenset({"think", "parameter"}),
        parents={
            "think": _TOP,
            "tool_call": _TOP,
            "function": frozenset({"tool_call"}),
            "parameter": frozenset({"function"}),
        },
        calls=frozenset({"function"}),
        containers=frozenset({"tool_call"}),
    ),
    "plain": _Spec(
        raw=frozenset({"think", "command", "action"}),
        parents={"think": _TOP, "command": _TOP, "action": _TOP},
        calls=frozenset({"command", "action"}),
    ),
    "hermes_json": _Spec(
        raw=frozenset({"think", "tool_call"}),
        parents={"think": _TOP, "tool_call": _TOP},
        calls=frozenset({"tool_call"}),
    ),
}


@cache
def _tag_re(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"<(/?)(" + "|".join(names) + r")(?:=([^<>\n]*))?>")


@dataclass(eq=False)
class _Element:
    name: str
    attr: str | None = None
    content: str = ""  # raw elements only
    closed: bool = False
    items: list[_Element | str] = field(default_factory=list)  # children and text, in order

    @property
    def label(self) -> str:
        return f"{self.name}={self.attr}" if self.attr else self.name

    @property
    def children(self) -> list[_Element]:
        return [item for item in self.items if isinstance(item, _Element)]

    def walk(self):
        for child in self.children:
            yield child
            yield from child.walk()


def _scan(text: str, spec: _Spec, warn: list[str]) -> _Element:
    """Build the element tree of ``text``; structural problems go to ``warn``."""
    root = _Element("")
    stack = [root]
    pos = 0
    while match := spec.tag_re.search(text, pos):
        if match.start() > pos:
            stack[-1].items.append(text[pos : match.start()])
        closing, name, attr = match.group(1) == "/", match.group(2), match.group(3)
        pos = match.end()
        if closing:
            if not any(el.name == name for el in stack[1:]):
                warn.append(W.unexpected_close(name))
                continue
            while stack[-1].name != name:
                warn.append(W.unclosed(stack.pop().label))
            stack.pop().closed = True
            continue
        element = _Element(name, attr)
        if stack[-1].name not in spec.parents[name]:
            warn.append(W.bad_nesting(element.label, stack[-1].label or None))
        stack[-1].items.append(element)
        if name not in spec.raw:
            stack.append(element)
            continue
        end = text.find(f"</{name}>", pos)
        element.closed = end >= 0
        end = end if element.closed else len(text)
        element.content = text[pos:end]
        pos = end + len(f"</{name}>") if element.closed else end
        if not element.closed:
            warn.append(W.unclosed(element.label))
    if pos < len(text):
        stack[-1].items.append(text[pos:])
    warn.extend(W.unclosed(element.label) for element in reversed(stack[1:]))
    return root


def _check_text(root: _Element, warn: list[str]) -> None:
    """Text outside tags: before/between/after at the top level, stray inside containers."""
    positions = [i for i, item in enumerate(root.items) if isinstance(item, _Element)]
    for i, item in enumerate(root.items):
        if isinstance(item, str) and item.strip():
            if not positions or i < positions[0]:
                warn.append(W.TEXT_BEFORE)
            elif i > positions[-1]:
                warn.append(W.TEXT_AFTER)
            else:
                warn.append(W.TEXT_BETWEEN)
    for element in root.walk():
        if any(isinstance(item, str) and item.strip() for item in element.items):
            warn.append(W.stray_text(element.label))


def _check_think(root: _Element, require_think: bool, warn: list[str]) -> None:
    thinks = [el for el in root.walk() if el.name == "think"]
    if not thinks:
        if require_think:
            warn.append(W.MISSING_THINK)
        return
    if len(thinks) > 1:
        warn.append(W.REPEATED_THINK)
    if root.children[0] is not thinks[0]:
        warn.append(W.THINK_NOT_FIRST)
    if thinks[0].closed and not thinks[0].content.strip():
        warn.append(W.empty("think"))


_Call = tuple[str | None, bool]  # (command, done); (None, False) is an invalid call


def _qwen_call(element: _Element, warn: list[str]) -> _Call:
    if element.attr == "done":
        return None, True
    if element.attr != "bash":
        warn.append(W.unknown_tool(element.attr or ""))
        return None, False
    params = [el for el in element.children if el.name == "parameter" and el.attr == "command"]
    if not params:
        warn.append(W.missing("parameter=command", element.label))
        return None, False
    return _command(params[0], warn), False


def _plain_call(element: _Element, warn: list[str]) -> _Call:
    if element.name == "command":
        return _command(element, warn), False
    if element.content.strip() == "done":
        return None, True
    warn.append(W.unknown_tool(element.content.strip()))
    return None, False


def _hermes_call(element: _Element, warn: list[str]) -> _Call:
    if not element.closed:
        return None, False
    try:
        call = json.loads(element.content)
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            arguments = json.loads(arguments)
        name = call.get("name")
        command = arguments.get("command") if name == "bash" else None
    except (ValueError, AttributeError, RecursionError):
        warn.append(W.INVALID_JSON)
        return None, False
    if name == "done":
        return None, True
    if name != "bash":
        warn.append(W.unknown_tool(str(name)))
        return None, False
    if not isinstance(command, str) or not command.strip():
        warn.append(W.empty("tool_call"))
        return None, False
    return command.strip(), False


def _command(element: _Element, warn: list[str]) -> str | None:
    if not element.closed:
        return None
    if not element.content.strip():
        warn.append(W.empty(element.label))
        return None
    return element.content.strip()


_CALL_READERS = {"qwen_xml": _qwen_call, "plain": _plain_call, "hermes_json": _hermes_call}


def parse_action(text: str, action_format: ActionFormat = "qwen_xml", require_think: bool = True) -> ParsedAction:
    """Parse one assistant turn (see the module docstring for the rules). Never raises."""
    spec = _SPECS[action_format]
    warn: list[str] = []
    root = _scan(text, spec, warn)
    _check_think(root, require_think, warn)
    _check_text(root, warn)
    calls = [_CALL_READERS[action_format](el, warn) for el in root.walk() if el.name in spec.calls]
    warn.extend(W.empty(el.label) for el in root.walk() if el.name in spec.containers and not el.items)
    valid = [call for call in calls if call[0] is not None or call[1]]
    if len(calls) > 1:
        warn.append(W.SEVERAL_COMMANDS)
    if not valid:
        warn.append(W.NO_COMMAND)
    command, done = valid[0] if valid else (None, False)
    return ParsedAction(command=command, done=done, warnings=tuple(dict.fromkeys(warn)))
