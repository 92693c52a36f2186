"""Transcripts from a file, for held-out env CE (``eval.heldout_transcripts``) and SFT (``train.sft_transcripts``).

    transcripts = load_transcript_file(path, chat, tasks, cfg)   # list[Trajectory], or a one-line UserError

A ``.jsonl`` file holds one transcript per line, each in either form (they may be mixed):

* a trajectory as ``echo-rl rollout run`` (or any echo-rl evaluation) writes it: token ids with their
  roles. Its ``meta.tokenizer`` must be the fingerprint of the tokenizer and chat template it is scored
  with (:func:`~echo_rl.harness.chat.tokenizer_fingerprint`); ids made by another tokenizer are refused.
* the text of an episode by any other agent, tokenised here with the run's tokenizer, chat template and
  action format (each command becomes one action, each output its observation, as for the reference
  solver's transcripts; a done call closes it)::

    {"task": "NAME", "instruction": "…", "reward": 1.0,
     "turns": [{"command": "ls", "output": "a.txt\\n", "exit_code": 0}, …]}

  ``task`` names the task; ``instruction`` may be left out when a task of that name is among the run's
  tasks; ``reward`` (default 1.0: a demonstration) is ≥ 1 for a solved episode; each turn needs a non-empty
  ``command`` string, an ``output`` string and an integer ``exit_code``, and may say ``"timed_out": true``.

A ``.parquet`` file is read as trajectories (:func:`~echo_rl.rollout.trajectory.load_trajectories`). Every
problem is a :class:`UserError` naming ``FILE:LINE`` and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.harness.chat import ChatFormat, tokenizer_fingerprint
from echo_rl.harness.parse import parse_action
from echo_rl.harness.render import render_action
from echo_rl.rollout.expert import expert_transcript
from echo_rl.rollout.trajectory import Trajectory, load_trajectories
from echo_rl.sandbox.base import ExecResult
from echo_rl.tasks.replay import ReferenceStep
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import VerifierResult


def stamp_tokenizer(trajectories: Sequence[Trajectory], chat: ChatFormat, split: str | None = None) -> None:
    """Record ``chat``'s tokenizer fingerprint in each trajectory's ``meta.tokenizer`` (so the file can be scored
    or imitated later, and refused with another tokenizer) and, when given, its ``split``."""
    fingerprint = tokenizer_fingerprint(chat)
    for trajectory in trajectories:
        trajectory.meta["tokenizer"] = fingerprint
        if split is not None:
            trajectory.split = split


_KINDS = {"a string": (str,), "an integer": (int,), "a number": (int, float), "a list": (list,)}


def _field(record: dict[str, Any], key: str, kind: str, where: str, name: str | None = None) -> Any:
    """``record[key]`` when it is of ``kind`` (a key of ``_KINDS``), else a UserError naming ``name or key``."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, _KINDS[kind]):
        raise UserError(f"{name or key}: expected {kind}, got {json.dumps(value)[:40]}", where=where)
    return value


def _text_transcript(record: dict[str, Any], where: str, chat: ChatFormat, tasks: dict[str, Task],
                     cfg: RunConfig) -> Trajectory:
    name = _field(record, "task", "a string", where)
    known = tasks.get(name)
    if "instruction" in record:
        metadata = {"metadata": known.metadata} if known else {}
        task = Task(name, _field(record, "instruction", "a string", where), metadata)
    elif known is not None:
        task = known
    else:
        raise UserError(f"instruction: missing, and no task named {name!r} among the run's tasks", where=where)
    reward = float(_field(record, "reward", "a number", where)) if "reward" in record else 1.0
    turns = _field(record, "turns", "a list", where)
    steps = []
    for i, turn in enumerate(turns):
        label = f"turns[{i}]"
        if not isinstance(turn, dict):
            raise UserError(f"{label}: expected an object", where=where)
        command = _field(turn, "command", "a string", where, f"{label}.command").strip()
        output = _field(turn, "output", "a string", where, f"{label}.output")
        exit_code = _field(turn, "exit_code", "an integer", where, f"{label}.exit_code")
        timed_out = turn.get("timed_out", False)
        if not command:
            raise UserError(f"{label}.command: empty", where=where)
        if not isinstance(timed_out, bool):
            raise UserError(f"{label}.timed_out: expected true or false", where=where)
        parsed = parse_action(render_action(chat.action_format, command, "x" if chat.require_think else None),
                              chat.action_format, chat.require_think)
        if parsed.command != command:
            raise UserError(f"{label}.command: cannot be written in action format {chat.action_format}", where=where)
        steps.append(ReferenceStep(command, ExecResult(output, exit_code, timed_out=timed_out)))
    outcome = "solved" if reward >= 1.0 else "failed"
    transcript = expert_transcript(task, steps, chat, VerifierResult(reward, outcome, "from a transcript file", 0.0),
                                   max_output_chars=cfg.harness.max_output_chars,
                                   command_timeout_s=cfg.sandbox.command_timeout_s)
    transcript.meta.update({"expert": False, "source": where})
    return transcript


def _token_transcript(record: dict[str, Any], where: str, fingerprint: str) -> Trajectory:
    recorded = record.get("meta", {}).get("tokenizer") if isinstance(record.get("meta"), dict) else None
    if recorded is None:
        raise UserError("meta.tokenizer: missing; token ids cannot be checked against the tokenizer scoring them "
                        "(re-record with `echo-rl rollout run`, or give the turns as text)", where=where)
    if recorded != fingerprint:
        raise UserError(f"meta.tokenizer: token ids made with another tokenizer ({recorded}, scoring with "
                        f"{fingerprint}); give the turns as text or re-record them", where=where)
    try:
        return Trajectory.from_dict(record)
    except (TypeError, ValueError, KeyError) as err:
        raise UserError(f"not a trajectory ({type(err).__name__}: {err})", where=where) from None


def load_transcript_file(path: str | Path, chat: ChatFormat, tasks: Sequence[Task], cfg: RunConfig) -> list[Trajectory]:
    """Every transcript of ``path`` (module docstring) as a trajectory in ``chat``'s tokens, each stamped with
    the tokenizer's fingerprint. Raises :class:`UserError` for a missing, empty or malformed file."""
    path = Path(path)
    fingerprint = tokenizer_fingerprint(chat)
    if path.suffix == ".parquet":
        transcripts = load_trajectories(path)
        for i, transcript in enumerate(transcripts):
            _token_transcript({"meta": transcript.meta}, f"{path}:row {i}", fingerprint)
        return transcripts
    if not path.is_file():
        raise UserError("no such transcript file", where=str(path))
    by_name = {task.name: task for task in tasks}
    transcripts = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"not JSON ({err.msg})", where=where) from None
        if not isinstance(record, dict):
            raise UserError("expected a JSON object", where=where)
        if "token_ids" in record:
            transcript = _token_transcript(record, where, fingerprint)
        else:
            transcript = _text_transcript(record, where, chat, by_name, cfg)
        transcript.meta["tokenizer"] = fingerprint
        transcripts.append(transcript)
    if not transcripts:
        raise UserError("holds no transcript", where=str(path))
    return transcripts
