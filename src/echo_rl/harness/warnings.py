"""The harness's rule-based format warnings and the block that carries them (method §4).

Warnings are fixed sentences (low entropy by design: the paper excludes them from the env-loss targets
because a model memorises them quickly). The block sits in front of the observation:

    WARNINGS:
    - Missing <think> block
    - Text after the tool call

"""

from __future__ import annotations

MISSING_THINK = "Missing <think> block"
REPEATED_THINK = "Repeated <think> block: write one, before the tool call"
THINK_NOT_FIRST = "The <think> block must come first"
SEVERAL_COMMANDS = "Several commands: only the first one was run"
NO_COMMAND = "No command found: nothing was run"
TEXT_BEFORE = "Text before the first tag"
TEXT_BETWEEN = "Text between tags"
TEXT_AFTER = "Text after the last tag"
INVALID_JSON = "Invalid JSON in <tool_call>"


def unclosed(tag: str) -> str:
    return f"Unclosed <{tag}> tag"


def empty(tag: str) -> str:
    return f"Empty <{tag}> tag"


def bad_nesting(tag: str, parent: str | None) -> str:
    where = f"inside <{parent}>" if parent else "outside any tag"
    return f"Bad nesting: <{tag}> {where}"


def missing(tag: str, parent: str) -> str:
    return f"Missing <{tag}> in <{parent}>"


def unexpected_close(tag: str) -> str:
    return f"Unexpected </{tag}>"


def stray_text(tag: str) -> str:
    return f"Stray text inside <{tag}>"


def unknown_tool(name: str) -> str:
    return f"Unknown tool {name[:40]!r}: use bash or done"


def render_warnings(warnings: list[str]) -> str:
    """``WARNINGS:\\n- w1\\n- w2\\n\\n`` for a non-empty list, ``""`` otherwise."""
    if not warnings:
        return ""
    return "WARNINGS:\n" + "".join(f"- {warning}\n" for warning in warnings) + "\n"
