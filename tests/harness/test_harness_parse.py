"""The action parsers: the three formats, every warning rule, and never raising on any input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echo_rl.harness import warnings as W
from echo_rl.harness.parse import parse_action
from echo_rl.harness.render import render_action

FORMATS = ("qwen_xml", "plain", "hermes_json")

QWEN = "<tool_call>\n<function=bash>\n<parameter=command>\n{}\n</parameter>\n</function>\n</tool_call>"
DONE = "<tool_call>\n<function=done>\n</function>\n</tool_call>"
THINK = "<think>\nplan\n</think>\n"


@pytest.mark.parametrize(
    ("text", "command", "done", "warnings"),
    [
        (THINK + QWEN.format("ls -la"), "ls -la", False, ()),
        (THINK + DONE, None, True, ()),
        (QWEN.format("ls"), "ls", False, (W.MISSING_THINK,)),
        (THINK + THINK + QWEN.format("ls"), "ls", False, (W.REPEATED_THINK,)),
        (QWEN.format("ls") + THINK, "ls", False, (W.THINK_NOT_FIRST,)),
        ("<think> </think>" + QWEN.format("ls"), "ls", False, (W.empty("think"),)),
        ("<think>never closed " + QWEN.format("ls"), None, False, (W.unclosed("think"), W.NO_COMMAND)),
        ("hello " + THINK + QWEN.format("ls"), "ls", False, (W.TEXT_BEFORE,)),
        (THINK + QWEN.format("ls") + " bye", "ls", False, (W.TEXT_AFTER,)),
        (THINK + QWEN.format("ls") + " and " + QWEN.format("pwd"), "ls", False, (W.TEXT_BETWEEN, W.SEVERAL_COMMANDS)),
        (THINK + QWEN.format("ls") + DONE, "ls", False, (W.SEVERAL_COMMANDS,)),
        (
            THINK + "<tool_call><function=bash><parameter=command>ls</parameter></function>",
            "ls",
            False,
            (W.unclosed("tool_call"),),
        ),
        (
            THINK + "<tool_call><function=bash><parameter=command>ls</parameter></tool_call>",
            "ls",
            False,
            (W.unclosed("function=bash"),),
        ),
        (
            THINK + "<function=bash><parameter=command>ls</parameter></function>",
            "ls",
            False,
            (W.bad_nesting("function=bash", None),),
        ),
        (
            THINK + "<tool_call><tool_call><function=done></function></tool_call></tool_call>",
            None,
            True,
            (W.bad_nesting("tool_call", "tool_call"),),
        ),
        (
            THINK + "<tool_call><function=bash><parameter=command>  </parameter></function></tool_call>",
            None,
            False,
            (W.empty("parameter=command"), W.NO_COMMAND),
        ),
        (THINK + "<tool_call></tool_call>", None, False, (W.empty("tool_call"), W.NO_COMMAND)),
        (
            THINK + "<tool_call><function=bash></function></tool_call>",
            None,
            False,
            (W.missing("parameter=command", "function=bash"), W.NO_COMMAND),
        ),
        (
            THINK + "<tool_call><function=python><parameter=code>1</parameter></function></tool_call>",
            None,
            False,
            (W.unknown_tool("python"), W.NO_COMMAND),
        ),
        (THINK + "<tool_call>x<function=done></function></tool_call>", None, True, (W.stray_text("tool_call"),)),
        (THINK + "</tool_call>" + DONE, None, True, (W.unexpected_close("tool_call"),)),
        (THINK + "just text", None, False, (W.TEXT_AFTER, W.NO_COMMAND)),
        ("", None, False, (W.MISSING_THINK, W.NO_COMMAND)),
    ],
)
def test_qwen_xml_rules(text, command, done, warnings):
    parsed = parse_action(text, "qwen_xml")
    assert (parsed.command, parsed.done, parsed.warnings) == (command, done, warnings)


@pytest.mark.parametrize(
    ("text", "command", "done", "warnings"),
    [
        (THINK + "<command>ls</command>", "ls", False, ()),
        (THINK + "<action>done</action>", None, True, ()),
        (THINK + "<command>ls</command><command>pwd</command>", "ls", False, (W.SEVERAL_COMMANDS,)),
        (THINK + "<command></command>", None, False, (W.empty("command"), W.NO_COMMAND)),
        (THINK + "<action>quit</action>", None, False, (W.unknown_tool("quit"), W.NO_COMMAND)),
        (THINK + "<command>ls", None, False, (W.unclosed("command"), W.NO_COMMAND)),
        ("<command>echo '<think>'</command>", "echo '<think>'", False, (W.MISSING_THINK,)),
    ],
)
def test_plain_rules(text, command, done, warnings):
    parsed = parse_action(text, "plain")
    assert (parsed.command, parsed.done, parsed.warnings) == (command, done, warnings)


@pytest.mark.parametrize(
    ("text", "command", "done", "warnings"),
    [
        ('<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>', "ls", False, ()),
        ('<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>', "ls", False, ()),
        ('<tool_call>{"name": "done", "arguments": {}}</tool_call>', None, True, ()),
        ("<tool_call>{not json</tool_call>", None, False, (W.INVALID_JSON, W.NO_COMMAND)),
        ("<tool_call>[1, 2]</tool_call>", None, False, (W.INVALID_JSON, W.NO_COMMAND)),
        (
            '<tool_call>{"name": "bash", "arguments": {"command": ""}}</tool_call>',
            None,
            False,
            (W.empty("tool_call"), W.NO_COMMAND),
        ),
        ('<tool_call>{"name": "rm", "arguments": {}}</tool_call>', None, False, (W.unknown_tool("rm"), W.NO_COMMAND)),
    ],
)
def test_hermes_rules(text, command, done, warnings):
    parsed = parse_action(text, "hermes_json", require_think=False)
    assert (parsed.command, parsed.done, parsed.warnings) == (command, done, warnings)


def test_rejected_means_no_command_and_not_done():
    assert parse_action("nothing here").rejected
    assert not parse_action(THINK + DONE).rejected
    assert not parse_action(THINK + QWEN.format("ls")).rejected


def test_think_is_optional_when_not_required():
    assert parse_action(QWEN.format("ls"), require_think=False).warnings == ()


TAG_PIECES = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<function=bash>",
    "<function=done>",
    "<function=",
    "</function>",
    "<parameter=command>",
    "</parameter>",
    "<command>",
    "</command>",
    "<action>",
    "</action>",
    "done",
    "ls -la",
    '{"name": "bash", "arguments": {"command": "ls"}}',
    "{",
    "}",
    '"',
    "\n",
    " ",
    "<",
    ">",
    "=",
    "/",
    "<|im_end|>",
    "\x00",
    "é",
    "\ud7ff",
    "🙂",
]
adversarial = st.lists(st.one_of(st.sampled_from(TAG_PIECES), st.text(max_size=5)), max_size=40).map("".join)


@settings(max_examples=200, deadline=None, database=None)
@given(text=st.one_of(st.text(), adversarial), fmt=st.sampled_from(FORMATS), require_think=st.booleans())
def test_parsers_never_raise(text, fmt, require_think):
    parsed = parse_action(text, fmt, require_think)
    assert parsed.command is None or (parsed.command == parsed.command.strip() and parsed.command)
    assert not (parsed.done and parsed.command is not None)
    assert parsed.rejected == (W.NO_COMMAND in parsed.warnings)
    assert len(set(parsed.warnings)) == len(parsed.warnings)


commands = (
    st.text(min_size=1)
    .map(str.strip)
    .filter(lambda c: c and not any(tag in c for tag in ("</parameter>", "</command>", "</tool_call>", "</think>")))
)


@settings(max_examples=100, deadline=None, database=None)
@given(command=commands, fmt=st.sampled_from(FORMATS))
def test_rendered_actions_parse_back_without_warnings(command, fmt):
    parsed = parse_action(render_action(fmt, command, "why"), fmt)
    assert (parsed.command, parsed.done, parsed.warnings) == (command, False, ())
    done = parse_action(render_action(fmt, None, "why"), fmt)
    assert (done.command, done.done, done.warnings) == (None, True, ())
