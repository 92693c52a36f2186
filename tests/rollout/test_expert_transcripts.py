"""Expert transcripts: the reference solution with real outputs, tokenised like a sampled episode."""

import asyncio

from rollout_helpers import config

from echo_rl.harness.parse import parse_action
from echo_rl.harness.render import render_output
from echo_rl.rollout.expert import record_expert_transcripts
from echo_rl.roles import Role
from echo_rl.tasks.families import generate
from echo_rl.tasks.task import Task


def test_reference_replay_becomes_a_clean_solved_transcript(chat):
    tasks = [generate("pointer_chase", 4), generate("log_count", 4)]
    broken = Task("broken-2", "x", files={"environment/setup.sh": b"exit 1\n", "tests/test.sh": b"exit 0\n"})
    recording = asyncio.run(record_expert_transcripts([*tasks, broken], chat, config()))
    transcripts = recording.transcripts
    assert [t.task_id for t in transcripts] == [t.name for t in tasks]  # the broken task is left out
    for task, transcript in zip(tasks, transcripts, strict=True):
        assert (transcript.outcome, transcript.reward, transcript.stop_reason) == ("solved", 1.0, "done")
        assert [t.command for t in transcript.turns] == [*task.reference_commands, None]
        assert transcript.turns[-1].done and transcript.meta["expert"]
        assert all(lp == 0.0 for lp in transcript.logprobs)
        for turn in transcript.turns:
            action = transcript.token_ids[slice(*turn.action_span)]
            assert action[-1] == chat.eot_id and all(
                r == Role.ACTION for r in transcript.roles[slice(*turn.action_span)]
            )
            assert parse_action(turn.action_text).warnings == () and turn.parse_ok
            if turn.command is not None:
                env = chat.decode(transcript.token_ids[slice(*turn.env_span)])
                assert env == render_output(turn.output, turn.exit_code) and turn.exit_code == 0
        assert transcript.turns[1].output  # a real observation: what the reference command printed


def test_replays_recorded_once_train_a_tokenizer_and_are_tokenised_with_it():
    from echo_rl.harness.chat import ChatFormat
    from echo_rl.models.tokenizer import train_tokenizer
    from echo_rl.rollout.expert import expert_transcripts, replay_references, transcript_tokenizer

    cfg = config()
    tasks = [generate("pointer_chase", 5), generate("log_count", 5)]
    replays = asyncio.run(replay_references(tasks, cfg, label="echo-rl-test"))
    assert [task.name for task, _, verdict in replays] == [t.name for t in tasks] and replays[0][2].outcome == "solved"
    bpe = transcript_tokenizer(replays, cfg, vocab_size=400)
    assert 263 < len(bpe.tokenizer) <= 400
    chat = ChatFormat.from_config(train_tokenizer(["x"], vocab_size=263), cfg.harness)  # bytes only
    byte_level, merged = expert_transcripts(replays, chat, cfg), expert_transcripts(replays, bpe, cfg)
    for a, b in zip(byte_level, merged, strict=True):  # the same text in fewer tokens, no second replay
        assert bpe.decode(b.token_ids) == chat.decode(a.token_ids) and len(b.token_ids) < len(a.token_ids)
        assert [t.command for t in a.turns] == [t.command for t in b.turns] and b.outcome == "solved"
