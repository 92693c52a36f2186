"""Expert transcripts: the reference solution as a trajectory, with the terminal's real outputs.

    trajectory = expert_transcript(task, steps, chat, verifier_result)     # steps from record_reference
    recording = await record_expert_transcripts(tasks, chat, cfg)  # .transcripts, .skipped (with reasons)
    replays = await replay_references(tasks, cfg, label="x")       # (task, steps, verdict), to tokenise later
    trajectories = expert_transcripts(replays, chat, cfg)          # … with any tokenizer, no second replay

Each reference command becomes one action written in the harness's action format (with a fixed think
block when the harness requires one) followed by the end-of-turn token — ACTION tokens with log-prob
0.0 — and its real :class:`~echo_rl.sandbox.base.ExecResult` becomes the observation, built by the same
:class:`~echo_rl.rollout.transcript.TranscriptBuilder` as a sampled episode. A final done call closes the
transcript. Used for SFT and for the fixed off-policy held-out env-CE set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.harness.chat import ChatFormat
from echo_rl.harness.parse import parse_action
from echo_rl.harness.render import render_action
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.rollout.transcript import TranscriptBuilder
from echo_rl.sandbox.base import stop_after_use
from echo_rl.tasks.environment import check_runnable, open_task_sandbox
from echo_rl.tasks.replay import ReferenceStep, record_reference, reference_turns, with_infra_retries
from echo_rl.tasks.settings import resolve_env
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import VerifierResult, verify

EXPERT_THINK = "I will run the next step of the plan."
# a replayed reference solution: the task, its commands with their recorded results, the verifier's verdict
Replay = tuple[Task, list[ReferenceStep], VerifierResult | None]


def expert_transcript(
    task: Task,
    steps: Sequence[ReferenceStep],
    chat: ChatFormat,
    verifier: VerifierResult | None,
    *,
    max_output_chars: int = 50_000,
    command_timeout_s: float | None = None,
) -> Trajectory:
    """The trajectory of ``steps`` (commands with their recorded results) ending in a done call, with
    ``verifier``'s reward and outcome (None: a task without tests, ``unverified``)."""
    think = EXPERT_THINK if chat.require_think else None
    builder = TranscriptBuilder(chat, task.instruction, max_output_chars=max_output_chars)
    eot = [chat.eot_id] if chat.eot_id is not None else []
    for command, result in [*((step.command, step.result) for step in steps), (None, None)]:
        text = render_action(chat.action_format, command, think)
        turn = builder.add_action(chat.tokenizer.encode(text, add_special_tokens=False) + eot, None)
        pieces = builder.observe(
            turn, parse_action(turn.action_text, chat.action_format, chat.require_think), result, command_timeout_s
        )
        if pieces:
            builder.append(turn, pieces)
    return builder.build(
        task.name,
        reward=None if verifier is None else verifier.reward,
        outcome="unverified" if verifier is None else verifier.outcome,
        verifier_reason="no tests/test.sh" if verifier is None else verifier.reason,
        stop_reason="done",
        family=task.family,
        meta={"expert": True},
    )


async def replay_verified(
    task: Task, cfg: RunConfig, slots: asyncio.Semaphore, *, label: str
) -> tuple[list[ReferenceStep], VerifierResult | None] | None:
    """Replay ``task``'s reference solution in a fresh sandbox (one of ``slots``) and verify it (not a task
    without tests: no result); an infrastructure failure is retried ``sandbox.infra_retries`` times with
    back-off (:func:`~echo_rl.tasks.replay.with_infra_retries`). None when every attempt failed."""

    async def attempt() -> tuple[list[ReferenceStep], VerifierResult | None]:
        async with slots:
            sandbox = await open_task_sandbox(task, cfg.sandbox, label=label)
            try:
                steps = await record_reference(task, sandbox, cfg.sandbox.command_timeout_s)
                timeout = task.verifier_timeout_s or cfg.episode.verifier_timeout_s
                return steps, await verify(task, sandbox, timeout) if task.has_tests else None
            finally:
                await stop_after_use(sandbox)

    replayed, _ = await with_infra_retries(cfg.sandbox, attempt, lambda r: r[1], f"{label} of {task.name}")
    return replayed


def expert_transcripts(replays: Sequence[Replay], chat: ChatFormat, cfg: RunConfig) -> list[Trajectory]:
    """:func:`expert_transcript` of each replay, with the run's output limit and command timeout."""
    return [
        expert_transcript(task, steps, chat, result, max_output_chars=cfg.harness.max_output_chars,
                          command_timeout_s=cfg.sandbox.command_timeout_s)
        for task, steps, result in replays
    ]


def transcript_tokenizer(replays: Sequence[Replay], cfg: RunConfig, vocab_size: int,
                         pretokenizer: Literal["bytelevel", "qwen"] = "bytelevel") -> ChatFormat:
    """The chat format (``cfg.harness``) of a byte-level BPE of ``vocab_size`` ids trained on the text of
    ``replays``' transcripts. Transcripts are token ids, so they are rendered once through a provisional
    byte-level tokenizer (which decodes exactly); the replays can then be tokenised with the result."""
    from echo_rl.models.tokenizer import train_tokenizer

    provisional = ChatFormat.from_config(train_tokenizer(["x"], vocab_size=263), cfg.harness)
    texts = [provisional.decode(t.token_ids) for t in expert_transcripts(replays, provisional, cfg)]
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, pretokenizer=pretokenizer)
    return ChatFormat.from_config(tokenizer, cfg.harness)


async def replay_references(
    tasks: Sequence[Task], cfg: RunConfig, *, label: str, on_done: Callable[[], None] | None = None
) -> list[Replay]:
    """Replay each task's reference solution in a fresh sandbox and verify it (``sandbox.pool_size`` at a
    time, :func:`replay_verified`); tasks whose sandbox failed after ``sandbox.infra_retries`` retries are left
    out. ``on_done`` is called as each task finishes (a progress bar)."""
    slots = asyncio.Semaphore(cfg.sandbox.pool_size)

    async def one(task: Task) -> Replay | None:
        try:
            replayed = await replay_verified(task, cfg, slots, label=label)
            return None if replayed is None else (task, *replayed)
        finally:
            if on_done is not None:
                on_done()

    return [r for r in await asyncio.gather(*(one(task) for task in tasks)) if r is not None]


@dataclass
class ExpertRecording:
    """Transcripts of the tasks whose reference solution was replayed, and why the others were not."""

    transcripts: list[Trajectory] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "task NAME: reason"


async def record_expert_transcripts(
    tasks: Sequence[Task],
    chat: ChatFormat,
    cfg: RunConfig,
    *,
    label: str = "echo-rl-expert",
    concurrency: int | None = None,
) -> ExpertRecording:
    """Replay each task's reference solution (:func:`~echo_rl.tasks.replay.reference_turns`: per marked
    turn, or the whole script as one turn) in a fresh sandbox, verify it and build its transcript. A task
    without a replayable reference, one the backend cannot run, or whose sandbox failed (after
    ``sandbox.infra_retries`` retries) is skipped with its reason."""
    slots = asyncio.Semaphore(concurrency or cfg.sandbox.pool_size)
    recording = ExpertRecording()

    async def one(task: Task) -> Trajectory | None:
        try:
            reference_turns(task)
            resolve_env(task.solution_env, "solution.env", task)
            check_runnable(task, cfg.sandbox)
        except UserError as err:
            recording.skipped.append(str(err))
            return None
        replayed = await replay_verified(task, cfg, slots, label=label)
        if replayed is None:
            recording.skipped.append(f"task {task.name}: the sandbox failed on every attempt")
            return None
        return expert_transcripts([(task, *replayed)], chat, cfg)[0]

    found = await asyncio.gather(*(one(task) for task in tasks))
    recording.transcripts = [t for t in found if t is not None]
    return recording
