"""Text the harness writes: observation bodies, actions in each format, and the system prompt.

Observation content = ``render_warnings(warnings)`` + ``render_output(...)`` (method §4). The output part
is the paper's O' (ENV tokens): the command's output, cut to ``max_chars`` characters with a notice saying
how much was shown, then a timeout message when the command ran out of time, then ``(exit_code=N)``:

    total 0
    -rw-r--r-- 1 user user 0 a.txt
    (exit_code=0)
"""

from __future__ import annotations

import json

from echo_rl.harness.parse import ActionFormat


def render_output(
    output: str,
    exit_code: int,
    *,
    timed_out: bool = False,
    timeout_s: float | None = None,
    sandbox_truncated: bool = False,
    max_chars: int = 50_000,
) -> str:
    """The ENV part of an observation. ``sandbox_truncated`` says the sandbox already cut the output
    (it printed more than the sandbox keeps), so the notice cannot give a total."""
    shown = output[:max_chars]
    parts = [shown]
    if len(output) > max_chars or sandbox_truncated:
        total = "more than that" if sandbox_truncated else f"{len(output):,} characters in all"
        parts.append(_newline(shown) + f"[output truncated: showing the first {len(shown):,} characters; {total}]")
    if timed_out:
        limit = f" after {timeout_s:g} s" if timeout_s is not None else ""
        parts.append(_newline("".join(parts)) + f"[command timed out{limit} and was killed]")
    parts.append(_newline("".join(parts)) + f"(exit_code={exit_code})")
    return "".join(parts)


def _newline(text: str) -> str:
    return "\n" if text and not text.endswith("\n") else ""


def render_action(action_format: ActionFormat, command: str | None, think: str | None = None) -> str:
    """An assistant turn in ``action_format`` that :func:`~echo_rl.harness.parse.parse_action` reads back
    as ``command`` (``None``: the done call) without warnings (given a think block when one is required).
    ``command`` must not contain its format's closing tag."""
    head = f"<think>\n{think}\n</think>\n\n" if think is not None else ""
    if action_format == "qwen_xml":
        if command is None:
            return head + "<tool_call>\n<function=done>\n</function>\n</tool_call>"
        return (
            head
            + f"<tool_call>\n<function=bash>\n<parameter=command>\n{command}\n</parameter>\n</function>\n</tool_call>"
        )
    if action_format == "plain":
        return head + ("<action>done</action>" if command is None else f"<command>\n{command}\n</command>")
    call = {"name": "done", "arguments": {}} if command is None else {"name": "bash", "arguments": {"command": command}}
    return head + f"<tool_call>\n{json.dumps(call)}\n</tool_call>"


def system_prompt(action_format: ActionFormat, require_think: bool = True) -> str:
    """The default system prompt: the task setting and the action format, with one example of each call."""
    think = "First think inside <think>…</think>, then " if require_think else ""
    example = render_action(action_format, "ls -la", "What files are here?" if require_think else None)
    done = render_action(action_format, None)
    return (
        "You are an agent in a Linux terminal. Solve the task by running bash commands, one per turn. "
        f"{think}call exactly one tool. Each command's output and exit code come back to you.\n\n"
        f"Run a command:\n{example}\n\nWhen the task is complete:\n{done}"
    )
