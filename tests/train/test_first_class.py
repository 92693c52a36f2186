"""Every task is first-class: evaluation, training with evaluation, held-out env CE and SFT on hand-written
Harbor tasks without echo-rl's turn markers (tests/fixtures/harbor-handwritten), and transcript files from
any agent."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from train_configs import make_config

from echo_rl.cli import main
from echo_rl.configfile import dump_config
from echo_rl.harness.chat import ChatFormat
from echo_rl.models.load import load_policy_model
from echo_rl.rollout.expert import record_expert_transcripts
from echo_rl.rollout.trajectory import load_trajectories, save_trajectories
from echo_rl.rollout.transcript_file import load_transcript_file
from echo_rl.tasks.harbor import load_task_dir
from echo_rl.tasks.replay import reference_turns

HANDWRITTEN = Path(__file__).parents[1] / "fixtures" / "harbor-handwritten"
CORPUS = [f"tasks.train={HANDWRITTEN}", f"tasks.validation={HANDWRITTEN}", f"tasks.heldout={HANDWRITTEN}",
          "eval.samples_per_task=1", "eval.greedy=false", "eval.heldout_transcript_tasks=8"]


@pytest.fixture(scope="module")
def chat():
    cfg = make_config()
    _, tokenizer = load_policy_model("tiny")
    return ChatFormat.from_config(tokenizer, cfg.harness)


def _config_file(tmp_path: Path, *overrides: str) -> str:
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(make_config(*CORPUS, *overrides)))
    return str(path)


def _result(run: Path) -> dict:
    return json.loads(next((run / "eval").glob("step-*.json")).read_text())


def test_unmarked_solutions_replay_as_one_turn_and_tasks_without_one_are_skipped(chat):
    tasks = {t.name: t for t in load_task_dir(HANDWRITTEN).tasks}
    assert reference_turns(tasks["count-words"])[0].startswith("bash <<'ECHO_RL_SOLVE_SH'\n#!/bin/bash\nset -euo")
    recording = asyncio.run(record_expert_transcripts(list(tasks.values()), chat, make_config()))
    solved = {t.task_id: t for t in recording.transcripts}
    assert set(solved) == {"count-words", "install-config"} and all(t.outcome == "solved" for t in solved.values())
    # one command turn (the script's `exit 0` ends only its child bash) and the done call
    assert [turn.command is not None for turn in solved["count-words"].turns] == [True, False]
    assert solved["count-words"].turns[0].output == "5\n"
    assert solved["install-config"].turns[0].output == "installed\n"  # found /solution/$CONFIG_NAME ([solution] env)
    assert recording.skipped == ["task greet: has no solution/solve.sh to replay"]


def test_eval_on_handwritten_tasks_records_env_ce_from_the_replayable_ones(tmp_path):
    assert main(["eval", _config_file(tmp_path), "--out", str(tmp_path / "run")]) == 0
    result = _result(tmp_path / "run")
    assert result["scores"]["validation"]["sampled"]["episodes"] == 3  # greet (no solution) is evaluated too
    assert result["env_ce"]["transcripts"] == 2 and result["env_ce"]["tokens"] > 0


def test_eval_without_any_reference_solution_runs_and_says_why_env_ce_is_missing(tmp_path):
    only_greet = tmp_path / "tasks"
    shutil.copytree(HANDWRITTEN / "greet", only_greet / "greet")
    overrides = [f"tasks.{split}={only_greet}" for split in ("train", "validation", "heldout")]
    assert main(["eval", _config_file(tmp_path, *overrides), "--out", str(tmp_path / "run")]) == 0
    result = _result(tmp_path / "run")
    assert result["env_ce"] is None and "task greet: has no solution/solve.sh" in result["env_ce_skipped"]
    assert result["scores"]["validation"]["sampled"]["episodes"] == 1


@pytest.mark.slow
def test_train_with_evaluation_on_an_imported_corpus(tmp_path):
    assert main(["tasks", "import", str(HANDWRITTEN), "--out", str(tmp_path / "imported")]) == 0
    corpus = [f"tasks.{split}={tmp_path / 'imported'}" for split in ("train", "validation", "heldout")]
    config = _config_file(tmp_path, *corpus, "train.steps=1", "train.eval_every=1", "train.tasks_per_step=1",
                          "train.rollouts_per_task=2")
    assert main(["train", config, "--out", str(tmp_path / "run")]) == 0
    steps = sorted(p.name for p in (tmp_path / "run" / "eval").glob("step-*.json"))
    assert steps == ["step-000000.json", "step-000001.json"]


def test_text_transcripts_of_another_agent_score_env_ce_and_feed_sft(tmp_path, chat):
    episodes = [
        {"task": "count-words", "turns": [{"command": "wc -w < /app/notes.txt", "output": "5\n", "exit_code": 0},
                                          {"command": "echo 5 > /app/count.txt", "output": "", "exit_code": 0}]},
        {"task": "elsewhere", "instruction": "Say hi.", "reward": 0.0,
         "turns": [{"command": "echo hi", "output": "hi\n", "exit_code": 0}]},
    ]
    text = tmp_path / "agent.jsonl"
    text.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    tasks = load_task_dir(HANDWRITTEN).tasks
    loaded = load_transcript_file(text, chat, tasks, make_config())
    assert [t.task_id for t in loaded] == ["count-words", "elsewhere"]
    assert [t.outcome for t in loaded] == ["solved", "failed"]
    assert [turn.output for turn in loaded[0].turns] == ["5\n", "", ""]
    prompt = chat.decode(loaded[0].token_ids[: loaded[0].turns[0].action_span[0]])
    assert "Count the words in /app/notes.txt" in prompt  # the instruction of the run's task of that name

    assert main(["eval", _config_file(tmp_path, f"eval.heldout_transcripts={text}"), "--out", str(tmp_path / "ev")]) == 0
    assert _result(tmp_path / "ev")["env_ce"]["transcripts"] == 2
    sft_config = _config_file(tmp_path, f"train.sft_transcripts={text}", "train.sft_epochs=2", "train.sft_batch_size=1")
    assert main(["sft", sft_config, "--out", str(tmp_path / "sft")]) == 0
    records = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("kind") == "sft"] == [1, 2]  # one solved demonstration, 2 epochs


def test_rollout_run_output_is_a_heldout_transcript_file(tmp_path):
    config = _config_file(tmp_path)
    assert main(["rollout", "run", config, "--tasks", str(HANDWRITTEN / "greet"), "-n", "2", "--out",
                 str(tmp_path / "roll")]) == 0
    written = tmp_path / "roll" / "trajectories.jsonl"
    assert all(t.meta["tokenizer"] for t in load_trajectories(written))
    assert main(["eval", config, f"eval.heldout_transcripts={written}", "--out", str(tmp_path / "ev")]) == 0
    assert _result(tmp_path / "ev")["env_ce"]["transcripts"] == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"task": "count-words", "turns": [{"command": "ls", "output": "x"}]}',
         "agent.jsonl:2: turns[0].exit_code: expected an integer, got null"),
        ('{"task": "nowhere", "turns": []}', "agent.jsonl:2: instruction: missing, and no task named 'nowhere'"),
        ('{"task": "count-words", "turns": [{"command": "a </command> b", "output": "", "exit_code": 0}]}',
         "agent.jsonl:2: turns[0].command: cannot be written in action format plain"),
        ("not json", "agent.jsonl:2: not JSON"),
    ],
)
def test_a_bad_text_transcript_is_one_line_naming_file_line_and_field(tmp_path, capsys, line, message):
    good = '{"task": "count-words", "turns": [{"command": "ls", "output": "x", "exit_code": 0}]}'
    path = tmp_path / "agent.jsonl"
    path.write_text(good + "\n" + line + "\n")
    assert main(["eval", _config_file(tmp_path, f"eval.heldout_transcripts={path}"), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "eval").exists() or not list((tmp_path / "run" / "eval").glob("step-*"))


def test_token_ids_of_another_tokenizer_are_refused(tmp_path, capsys, chat):
    loaded = load_transcript_file(_write_one(tmp_path), chat, [], make_config())
    loaded[0].meta["tokenizer"] = "0123456789abcdef"
    other = tmp_path / "other.jsonl"
    save_trajectories(other, loaded)
    assert main(["eval", _config_file(tmp_path, f"eval.heldout_transcripts={other}"), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "other.jsonl:1: meta.tokenizer: token ids made with another tokenizer (0123456789abcdef" in err


def _write_one(tmp_path: Path) -> Path:
    path = tmp_path / "one.jsonl"
    turns = [{"command": "ls", "output": "", "exit_code": 0}]
    path.write_text(json.dumps({"task": "t", "instruction": "x", "turns": turns}) + "\n")
    return path
