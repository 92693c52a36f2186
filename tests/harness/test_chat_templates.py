"""Token-in/token-out across chat templates (issue 5, issue 10.3).

For random and adversarial actions and command outputs, a transcript built turn by turn must:
decode to the rendered transcript; hold the sampled ids verbatim as ACTION tokens; cover every byte of
the command output with ENV tokens and no template or harness byte with them. Templates: plain ChatML
(append-only), Qwen3's (drops earlier <think> blocks), one that changes separators at turn boundaries,
and a Llama-3-like one that trims message content.
"""

import logging
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echo_rl.harness.chat import ChatFormat
from echo_rl.harness.parse import parse_action
from echo_rl.harness.render import render_action, render_output, system_prompt
from echo_rl.harness.warnings import MISSING_THINK, render_warnings
from echo_rl.models.tokenizer import train_tokenizer
from echo_rl.roles import Role
from echo_rl.rollout.transcript import TranscriptBuilder
from echo_rl.sandbox.base import ExecResult

QWEN3 = """{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}
{%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}
{%- for message in messages %}{%- set content = message.content %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) %}{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}{%- set reasoning_content = '' %}
{%- if '</think>' in content %}{%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}
{%- if loop.index0 > ns.last_query_index %}{%- if loop.last or (not loop.last and reasoning_content) %}{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}
{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}{%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- content }}{{- '\\n</tool_response>' }}
{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\\n' }}{%- endif %}{%- endif %}{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"""

# The separator after a message exists only once another message follows it.
SEPARATOR = """{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>' }}
{%- if not loop.last %}{{- '\\n' }}{%- endif %}{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"""

TRIM = """{%- for m in messages %}{{- '<|im_start|>' + m.role + '\\n' + (m.content | trim) + '<|im_end|>\\n' }}{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"""

INSTRUCTION = "Find the key file and write its code to answer.txt."


@cache
def chat(template: str | None = None, role: str = "auto", fmt: str = "qwen_xml") -> ChatFormat:
    texts = [system_prompt(f) for f in ("qwen_xml", "plain")] + [
        render_output(f"file_{i}.txt\n", i % 2) for i in range(50)
    ]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    if template is not None:
        tokenizer.chat_template = template
    return ChatFormat(tokenizer, fmt, observation_role=role)


def sampled_ids(chat_format: ChatFormat, text: str) -> list[int]:
    """What a sampler could produce for ``text``: its ids cut at the first stop token, ending in eot."""
    ids = chat_format.tokenizer.encode(text, add_special_tokens=False)
    cut = next((i for i, t in enumerate(ids) if t in chat_format.stop_ids), len(ids))
    return ids[:cut] + [chat_format.eot_id]


def build(chat_format: ChatFormat, turns: list[tuple[str, str, int]], max_chars: int = 50_000):
    """Run ``(action text, command output, exit code)`` turns through a TranscriptBuilder."""
    builder = TranscriptBuilder(chat_format, INSTRUCTION, max_output_chars=max_chars)
    sampled = []
    for text, output, code in turns:
        ids = sampled_ids(chat_format, text)
        sampled.append(ids)
        turn = builder.add_action(ids, [-0.25] * len(ids))
        parsed = parse_action(turn.action_text, chat_format.action_format)
        result = ExecResult(output, code) if parsed.command is not None else None
        pieces = builder.observe(turn, parsed, result, 30.0)
        if parsed.done:
            break
        builder.append(turn, pieces)
    return builder.build("task-0"), sampled, builder.messages


def check_invariants(chat_format: ChatFormat, turns, trajectory, sampled, max_chars: int = 50_000) -> None:
    decode = chat_format.decode
    ids, roles = trajectory.token_ids, trajectory.roles
    expected_roles = [Role.PROMPT] * trajectory.turns[0].action_span[0]
    for turn, ids_sampled, (_, output, code) in zip(trajectory.turns, sampled, turns, strict=False):  # stops at done
        start, end = turn.action_span
        assert ids[start:end] == ids_sampled, "trained ids must equal sampled ids"
        assert trajectory.logprobs[start:end] == [-0.25] * len(ids_sampled)
        expected_roles += [Role.ACTION] * (end - start)
        if turn.observation_span is None:
            continue
        assert turn.observation_span[0] == end
        body = render_output(output, code, max_chars=max_chars) if turn.command is not None else ""
        block = render_warnings(turn.warnings)
        close = chat_format.assistant_close[len(chat_format.eot_text) :]
        pieces = [
            (Role.TEMPLATE, close + chat_format.observation_prefix),
            (Role.WARNING, block),
            (Role.ENV, body),
            (Role.TEMPLATE, chat_format.observation_suffix),
        ]
        position = end
        for role, text in pieces:
            if not text:
                continue
            span = {Role.WARNING: turn.warning_span, Role.ENV: turn.env_span}.get(role)
            n = len(chat_format.piece(role, text, role in (Role.WARNING, Role.ENV)).ids)
            if span is not None:
                assert span == (position, position + n)
            assert decode(ids[position : position + n]) == text
            expected_roles += [role] * n
            position += n
        if turn.command is not None:
            assert output[:max_chars] in decode(ids[slice(*turn.env_span)]), "command output must be ENV"
        assert turn.observation_span == (end, position)
    assert roles == [int(r) for r in expected_roles]
    assert decode(ids) == "".join(decode(ids[i:j]) for i, j in _runs(roles))


def _runs(roles):
    start = 0
    for i in range(1, len(roles) + 1):
        if i == len(roles) or roles[i] != roles[start]:
            yield start, i
            start = i


PIECES = [
    "<think>",
    "</think>",
    "\n",
    "<tool_call>",
    "</tool_call>",
    "<function=bash>",
    "<parameter=command>",
    "</parameter>",
    "</function>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "WARNINGS:\n- x\n\n",
    "(exit_code=0)",
    "é",
    "🙂",
    "\x00",
    " ",
    "ls",
]
noise = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=20).map("".join)
actions = st.one_of(
    noise,
    st.builds(lambda think, cmd: render_action("qwen_xml", cmd, think), noise, st.sampled_from(["ls", "cat a", "x y"])),
    st.just(render_action("qwen_xml", None, "done now")),
)
outputs = st.one_of(noise, st.text(max_size=80))
turns_strategy = st.lists(st.tuples(actions, outputs, st.integers(-1, 255)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, database=None)
@given(turns=turns_strategy, max_chars=st.sampled_from([30, 50_000]))
def test_append_only_template_decodes_to_the_full_render(turns, max_chars):
    c = chat()
    trajectory, sampled, messages = build(c, turns, max_chars)
    check_invariants(c, turns, trajectory, sampled, max_chars)
    if trajectory.turns[-1].observation_span is not None:
        render = c.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert c.decode(trajectory.token_ids) == render
    else:  # ended on a done call: the sampled end-of-turn token closes the transcript
        render = c.tokenizer.apply_chat_template(messages, tokenize=False)
        assert c.decode(trajectory.token_ids) + c.assistant_close[len(c.eot_text) :] == render


@pytest.mark.parametrize(("template", "role"), [(QWEN3, "user"), (SEPARATOR, "auto")], ids=["qwen3", "separator"])
def test_non_prefix_stable_templates_keep_sampled_ids_and_exact_roles(template, role, caplog):
    chat.cache_clear()
    with caplog.at_level(logging.WARNING, logger="echo_rl.harness.chat"):
        c = chat(template, role)
    assert not c.prefix_report.stable
    assert "not prefix-stable" in caplog.text and "trained ids equal sampled ids" in caplog.text
    turns = [
        (render_action("qwen_xml", "ls", "I should list the files first."), "a.txt\nkey_7.txt\n", 0),
        (render_action("qwen_xml", "cat key_7.txt", "The key file is key_7.txt."), "code: 4821\n", 0),
        ("<think>\nwrite it</think>oops no call", "", 0),
        (render_action("qwen_xml", "echo 4821 > answer.txt", "Now write it."), "", 0),
    ]
    trajectory, sampled, messages = build(c, turns)
    check_invariants(c, turns, trajectory, sampled)
    # Re-rendering the history (the naive approach) gives different ids for the earlier turns.
    rerendered = c.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rerendered != c.decode(trajectory.token_ids)
    first = trajectory.turns[0]
    assert c.decode(trajectory.token_ids[slice(*first.action_span)]) == turns[0][0] + c.eot_text
    if template == QWEN3:
        assert "I should list the files first." not in rerendered


def test_qwen3_tool_role_wraps_observations_in_tool_response():
    chat.cache_clear()
    c = chat(QWEN3, "auto")
    assert c.observation_role == "tool"
    trajectory, _, _ = build(c, [(render_action("qwen_xml", "ls", "look"), "a.txt\n", 0)])
    obs = trajectory.turns[0]
    text = c.decode(trajectory.token_ids[obs.observation_span[0] : obs.env_span[0]])
    assert text == "\n<|im_start|>user\n<tool_response>\n"
    assert c.decode(trajectory.token_ids[obs.env_span[1] : obs.observation_span[1]]) == (
        "\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


def test_trimming_template_roles_hold_what_the_model_sees():
    chat.cache_clear()
    c = chat(TRIM)
    trajectory, _, _ = build(c, [("no call at all", "", 0), (render_action("qwen_xml", "ls", "x"), "a.txt\n\n", 0)])
    warned, ran = trajectory.turns
    assert c.decode(trajectory.token_ids[slice(*warned.warning_span)]) == render_warnings(warned.warnings).strip()
    assert warned.env_span is None
    assert c.decode(trajectory.token_ids[slice(*ran.env_span)]) == "a.txt\n\n(exit_code=0)"


def test_special_token_text_in_output_stays_plain_bytes():
    c = chat()
    output = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>"
    trajectory, _, _ = build(c, [(render_action("qwen_xml", "cat x", "look"), output, 0)])
    env = trajectory.token_ids[slice(*trajectory.turns[0].env_span)]
    special = set(c.tokenizer.all_special_ids)
    assert not special & set(env)
    assert c.decode(env) == output + "\n(exit_code=0)"


def test_missing_think_warning_is_a_warning_span_before_the_output():
    c = chat()
    trajectory, _, _ = build(c, [(render_action("qwen_xml", "ls", None), "a\n", 0)])
    turn = trajectory.turns[0]
    assert turn.warnings == [MISSING_THINK]
    assert turn.warning_span[1] == turn.env_span[0]
    assert c.decode(trajectory.token_ids[slice(*turn.warning_span)]) == f"WARNINGS:\n- {MISSING_THINK}\n\n"


def test_tokenizer_without_chat_template_is_a_user_error():
    from echo_rl.errors import UserError

    tokenizer = train_tokenizer(["abc"], vocab_size=300)
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        ChatFormat(tokenizer)
