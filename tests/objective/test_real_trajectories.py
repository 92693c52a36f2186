"""Masks, filters and the loss on trajectories built by the rollout layer's own TranscriptBuilder (a real
ChatML template and tokenizer, the real action parser and observation renderer)."""

import pytest
import torch
from objective_helpers import backward_grads, separate_reference

from echo_rl.objective.batch import collate
from echo_rl.config import EnvFilters, EnvLossConfig, ObjectiveConfig
from echo_rl.harness.chat import ChatFormat
from echo_rl.harness.parse import parse_action
from echo_rl.harness.render import render_action
from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.models.tokenizer import train_tokenizer
from echo_rl.objective import LambdaBalancer, compute_advantages, echo_loss, group_ids_of
from echo_rl.roles import Role
from echo_rl.rollout.transcript import TranscriptBuilder
from echo_rl.sandbox.base import ExecResult

LS = ExecResult("key_1.txt\nnotes.md\n", 0)
STEPS = [  # (action text, result): one turn each
    (render_action("qwen_xml", "ls", "look around"), LS),  # 0: clean
    (render_action("qwen_xml", "cat key_1.txt"), ExecResult("4821\n", 0)),  # 1: missing think: parse_failed
    (render_action("qwen_xml", "foo", "try"), ExecResult("bash: foo: command not found\n", 127)),  # 2: error
    (render_action("qwen_xml", "ls", "again"), LS),  # 3: repeats turn 0's output
    ("I am not sure what to do.", None),  # 4: no tool call: rejected (and parse_failed)
    (render_action("qwen_xml", None, "done"), None),  # 5: done, no observation
]
NAMED = {"parse_failed": [1, 4], "rejected": [4], "error_only": [2], "repeated": [3]}


@pytest.fixture(scope="module")
def chat():
    texts = [text for text, _ in STEPS] + [r.output for _, r in STEPS if r] + ["(exit_code=0) WARNINGS"] * 3
    return ChatFormat(train_tokenizer(texts, vocab_size=400), "qwen_xml", require_think=True)


def _episode(chat, steps, reward, seed):
    builder = TranscriptBuilder(chat, "Print the code stored in the key file.")
    gen = torch.Generator().manual_seed(seed)
    for text, result in steps:
        ids = chat.tokenizer.encode(text, add_special_tokens=False) + [chat.eot_id]
        turn = builder.add_action(ids, (-torch.rand(len(ids), generator=gen)).tolist())
        pieces = builder.observe(turn, parse_action(turn.action_text, "qwen_xml", True), result, 30.0)
        if pieces:
            builder.append(turn, pieces)
    return builder.build("key-task", reward=reward, outcome="solved" if reward else "failed")


def _batch(chat, trajs, cfg):
    advantages, _ = compute_advantages([t.reward for t in trajs], group_ids_of(trajs), [t.valid for t in trajs])
    return collate(trajs, advantages, cfg, chat.tokenizer.pad_token_id, temperature=0.8)


def _positions(mask_row):
    return set(torch.nonzero(mask_row).flatten().tolist())


def test_masks_cover_exactly_the_roles_of_a_real_transcript(chat):
    traj = _episode(chat, STEPS, 1.0, 0)
    batch = _batch(chat, [traj], ObjectiveConfig())
    assert _positions(batch.action_mask[0]) == {i for i, r in enumerate(traj.roles) if r == Role.ACTION}
    assert _positions(batch.target_mask[0]) == {p for t in traj.turns if t.env_span for p in range(*t.env_span)}
    assert batch.warning_mask[0].any() and batch.obs_count[0] == batch.warning_mask.sum() + batch.env_mask.sum()
    decode = chat.tokenizer.decode
    assert decode(batch.input_ids[0][batch.env_mask[0]].tolist()).count("(exit_code=") == 4
    assert "4821" in decode(batch.input_ids[0][batch.target_mask[0]].tolist())
    assert not (batch.target_mask & (batch.action_mask | batch.warning_mask)).any()


@pytest.mark.parametrize("name", list(NAMED))
def test_filters_name_the_right_real_turns(chat, name):
    """With warning_plus_env targets, each filter drops exactly the warning and output tokens of its turns
    (a rejected action's observation is its warnings alone)."""
    traj = _episode(chat, STEPS, 1.0, 0)
    env = EnvLossConfig(targets="warning_plus_env")
    before = _positions(_batch(chat, [traj], ObjectiveConfig(env=env)).target_mask[0])
    cfg = ObjectiveConfig(env=env.model_copy(update={"filters": EnvFilters(**{name: True})}))
    after = _positions(_batch(chat, [traj], cfg).target_mask[0])
    spans = [s for i in NAMED[name] for s in (traj.turns[i].warning_span, traj.turns[i].env_span) if s]
    named = {p for span in spans for p in range(*span)}
    assert before - after == named and named


def test_echo_gradient_on_real_transcripts(chat):
    model = build_tiny_qwen3(chat.tokenizer, hidden_size=64, num_layers=2, intermediate_size=128)
    trajs = [_episode(chat, STEPS[: 2 + i], float(i % 2), i) for i in range(4)]
    cfg = ObjectiveConfig(env=EnvLossConfig(lam=0.05))
    batch = _batch(chat, trajs, cfg)
    loss, metrics = echo_loss(model, batch, cfg, LambdaBalancer(cfg).weights(0))
    got = backward_grads(model, loss)
    want_loss, want = separate_reference(model, batch, cfg, 0.05)
    assert loss.item() == pytest.approx(want_loss.item(), rel=1e-5)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert metrics["env_tokens"] > 0 and metrics["warning_tokens"] > 0
