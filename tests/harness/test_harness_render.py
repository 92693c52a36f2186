"""Observation text: exit-code line, truncation notice, timeout message, warnings block."""

from echo_rl.harness.render import render_output, system_prompt
from echo_rl.harness.warnings import render_warnings


def test_output_then_exit_code_line():
    assert render_output("a.txt\nb.txt\n", 0) == "a.txt\nb.txt\n(exit_code=0)"
    assert render_output("no newline", 2) == "no newline\n(exit_code=2)"
    assert render_output("", 1) == "(exit_code=1)"


def test_truncation_says_how_much_was_shown():
    text = render_output("x" * 120, 0, max_chars=100)
    assert (
        text
        == "x" * 100 + "\n[output truncated: showing the first 100 characters; 120 characters in all]\n(exit_code=0)"
    )
    assert render_output("x" * 100, 0, max_chars=100) == "x" * 100 + "\n(exit_code=0)"


def test_sandbox_truncation_is_reported_without_a_total():
    text = render_output("abc\n", 0, sandbox_truncated=True)
    assert text == "abc\n[output truncated: showing the first 4 characters; more than that]\n(exit_code=0)"


def test_timeout_message_and_exit_code_minus_one():
    text = render_output("started\n", -1, timed_out=True, timeout_s=30)
    assert text == "started\n[command timed out after 30 s and was killed]\n(exit_code=-1)"


def test_warnings_block():
    assert render_warnings([]) == ""
    assert render_warnings(["Missing <think> block", "No command found"]) == (
        "WARNINGS:\n- Missing <think> block\n- No command found\n\n"
    )


def test_system_prompt_shows_each_call_in_the_format():
    prompt = system_prompt("plain", require_think=False)
    assert "<command>\nls -la\n</command>" in prompt and "<action>done</action>" in prompt and "<think>" not in prompt
