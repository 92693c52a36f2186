"""The episode loop: policy ↔ harness ↔ sandbox, many episodes at once, one batched generation per step.

    runner = EpisodeRunner(policy, chat, cfg, label="run-3")
    trajectories = run_episodes(runner, group_requests(tasks, n=4))   # or: await runner.run(requests)

One episode: open the task's sandbox (tasks layer) → up to ``episode.max_turns`` times: generate (batched
with every other live episode), parse, run the command, append the observation → verify → a
:class:`~echo_rl.rollout.trajectory.Trajectory`. Limits (``EpisodeConfig``/``SandboxConfig``): turns,
context tokens, tokens per turn, agent wall time (the smaller of ``episode.agent_timeout_s`` and the
task's ``[agent] timeout_sec``), per-command timeout (cut to the agent time left). The verifier runs
after every episode whose sandbox is alive, agent limits included, with ``episode.verifier_timeout_s``
(a task's ``[verifier] timeout_sec`` wins) — unless the task has no ``tests/test.sh`` or the runner is
verifier-free (``verify=False``: env-only training), when it is skipped and nothing stands in for it.
The policy runs on a worker thread while sandbox I/O goes on, batching all live episodes
(:mod:`echo_rl.rollout.batcher`: continuously for the transformers backend,
one call per step for the others).

Every episode ends in exactly one outcome class; nothing raises out of :meth:`EpisodeRunner.run`:

    solved       the verifier gave reward ≥ 1, whatever stopped the agent
    failed       the verifier said no after the agent called done
    agent_limit  not solved, stopped by max_turns, max_context_tokens, max_turn_tokens or agent_timeout
    infra_error  the sandbox could not start (stop_reason env_setup_error) or died, the policy backend or
                 our code failed (stop_reason error), or the verifier could not run; retried
                 ``sandbox.infra_retries`` times after ``sandbox.retry_backoff_s`` · 2^attempt seconds
    unverified   the agent's part ended (any stop reason) and no verifier ran: reward None, never a pass
                 or a fail (``Trajectory.verified`` is False, ``valid`` True)

A task the configured backend cannot run at all is a :class:`~echo_rl.errors.UserError`, raised before any
episode starts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from echo_rl.config import RunConfig
from echo_rl.harness.chat import ChatFormat
from echo_rl.harness.parse import parse_action
from echo_rl.rollout.batcher import GenerationBatcher
from echo_rl.rollout.policy.base import Policy, SamplingParams
from echo_rl.rollout.trajectory import Outcome, StopReason, Trajectory
from echo_rl.rollout.transcript import TranscriptBuilder
from echo_rl.sandbox.base import Sandbox, SandboxError, retry_delay, stop_after_use
from echo_rl.seeding import derive_seed
from echo_rl.tasks.environment import check_runnable, open_task_sandbox
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import verify

log = logging.getLogger(__name__)

AGENT_LIMITS = frozenset({"max_turns", "max_context_tokens", "max_turn_tokens", "agent_timeout"})


@dataclass(frozen=True)
class EpisodeRequest:
    """One episode to run: ``task``, as sample ``group_index`` of its group. With a ``seed``, turn t samples
    from the random stream ``derive_seed(seed, t)`` of its own (the same tokens however many episodes run
    at once, on however many ranks); without, from the policy's generator."""

    task: Task
    group_index: int = 0
    seed: int | None = None

    def turn_seed(self, turn: int) -> int | None:
        return None if self.seed is None else derive_seed(self.seed, turn)


def group_requests(tasks: Sequence[Task], n: int, *, seed: int | None = None) -> list[EpisodeRequest]:
    """``n`` episodes per task (a GRPO group), task-major. ``seed`` gives episode i of the k-th occurrence
    of the task named N the stream ``derive_seed(seed, N, k, i)``: a task's episodes do not depend on which
    other tasks share the list."""
    seen: Counter[str] = Counter()
    requests = []
    for task in tasks:
        occurrence = seen[task.name]
        seen[task.name] += 1
        for i in range(n):
            requests.append(EpisodeRequest(task, i, None if seed is None else derive_seed(seed, task.name, occurrence, i)))
    return requests


class _Infra(Exception):
    """An infrastructure failure inside an attempt: (stop_reason, reason)."""


class EpisodeRunner:
    """Runs episodes of ``policy`` under ``cfg`` (episode, sandbox, harness and sampling sections).

    Every episode samples with :attr:`sampling`: ``temperature`` (default ``cfg.sampling.temperature``; pass
    ``cfg.sampling.eval_temperature`` or 0 for evaluation), ``cfg.sampling``'s top-p and top-k, the chat
    format's end-of-turn tokens as stops; its trajectory records the temperature and whether the policy's
    log-probs are exact for it. ``split`` and ``policy_step`` are copied onto every trajectory; ``label`` names the
    sandboxes (garbage collection after a crash). ``verify`` False skips the verifier of every episode
    (verifier-free training); it is skipped anyway for a task without tests."""

    def __init__(
        self,
        policy: Policy,
        chat: ChatFormat,
        cfg: RunConfig,
        *,
        temperature: float | None = None,
        label: str = "echo-rl",
        split: str | None = None,
        policy_step: int = 0,
        verify: bool = True,
    ) -> None:
        self.policy = policy
        self.chat = chat
        self.cfg = cfg
        self.sampling = SamplingParams(
            temperature=cfg.sampling.temperature if temperature is None else temperature,
            top_p=cfg.sampling.top_p,
            top_k=cfg.sampling.top_k,
            stop_token_ids=frozenset(chat.stop_ids),
        )
        self.label = label
        self.split = split
        self.policy_step = policy_step
        self.verify = verify
        self.batch_sizes: list[int] = []  # rows of each policy call / forward pass of the last run

    async def run(
        self,
        requests: Sequence[EpisodeRequest],
        *,
        concurrency: int | None = None,
        on_done: Callable[[Trajectory], None] | None = None,
    ) -> list[Trajectory]:
        """Run every request, at most ``concurrency`` (default ``sandbox.pool_size``) at a time; return
        the trajectories in request order. ``on_done`` is called as each episode finishes."""
        for task in {id(r.task): r.task for r in requests}.values():
            check_runnable(task, self.cfg.sandbox)
        slots = asyncio.Semaphore(concurrency or self.cfg.sandbox.pool_size)
        async with GenerationBatcher(self.policy, self.sampling, max_wait_s=self.cfg.episode.batch_wait_s) as batcher:

            async def one(request: EpisodeRequest) -> Trajectory:
                trajectory = await self._episode(request, batcher, slots)
                if on_done is not None:
                    on_done(trajectory)
                return trajectory

            trajectories = await asyncio.gather(*(one(r) for r in requests))
        self.batch_sizes = batcher.batch_sizes
        return list(trajectories)

    async def _episode(
        self, request: EpisodeRequest, batcher: GenerationBatcher, slots: asyncio.Semaphore
    ) -> Trajectory:
        failures: list[str] = []
        sandbox_cfg = self.cfg.sandbox
        for attempt in range(sandbox_cfg.infra_retries + 1):
            await asyncio.sleep(retry_delay(sandbox_cfg, attempt))
            async with slots:
                trajectory = await self._attempt(request, batcher)
            if trajectory.outcome != "infra_error":
                break
            failures.append(trajectory.verifier_reason)
            log.warning(
                "episode %s/%d: infra error (attempt %d): %s",
                request.task.name,
                request.group_index,
                attempt + 1,
                trajectory.verifier_reason,
            )
        trajectory.meta["attempts"] = len(failures) + (trajectory.outcome != "infra_error")
        trajectory.meta["infra_failures"] = failures
        return trajectory

    async def _attempt(self, request: EpisodeRequest, batcher: GenerationBatcher) -> Trajectory:
        task = request.task
        start = time.monotonic()
        timings = {"generate_s": 0.0, "exec_s": 0.0}
        builder = TranscriptBuilder(self.chat, task.instruction, max_output_chars=self.cfg.harness.max_output_chars)
        stop: StopReason = "error"
        reward: float | None = 0.0
        outcome: Outcome = "infra_error"
        reason = ""
        sandbox: Sandbox | None = None
        try:
            with batcher.member():  # live from set-up on: the first generation waits for episodes starting
                try:
                    sandbox = await open_task_sandbox(task, self.cfg.sandbox, label=self.label)
                except SandboxError as err:
                    raise _Infra("env_setup_error", f"sandbox error: {err}") from None
                finally:
                    timings["setup_s"] = time.monotonic() - start
                stop = await self._agent_loop(builder, sandbox, request, batcher, timings)
            if not (self.verify and task.has_tests):
                reward, outcome = None, "unverified"
                reason = "verifier-free run" if task.has_tests else "no tests/test.sh"
            else:
                stop_at = time.monotonic()
                result = await verify(task, sandbox, task.verifier_timeout_s or self.cfg.episode.verifier_timeout_s)
                timings["verify_s"] = time.monotonic() - stop_at
                reward, reason = result.reward, result.reason
                outcome = _outcome(result.outcome, stop)
        except _Infra as err:
            stop, reason = err.args
        except SandboxError as err:
            reason = f"sandbox error: {err}"
        except Exception as err:
            log.debug("episode %s/%d failed", task.name, request.group_index, exc_info=True)
            reason = f"{type(err).__name__}: {err}"
        finally:
            if sandbox is not None:
                await stop_after_use(sandbox)
        timings["total_s"] = time.monotonic() - start
        return builder.build(
            task.name,
            reward=reward,
            outcome=outcome,
            verifier_reason=reason,
            stop_reason=stop,
            family=task.family,
            split=self.split,
            group_index=request.group_index,
            policy_step=self.policy_step,
            timings=timings,
            temperature=self.sampling.temperature,
            exact_logprobs=self.policy.exact_logprobs(self.sampling),
        )

    async def _agent_loop(
        self,
        builder: TranscriptBuilder,
        sandbox: Sandbox,
        request: EpisodeRequest,
        batcher: GenerationBatcher,
        timings: dict[str, float],
    ) -> StopReason:
        limits, harness, task = self.cfg.episode, self.cfg.harness, request.task
        deadline = time.monotonic() + min(task.agent_timeout_s or math.inf, limits.agent_timeout_s)
        for turn_index in range(limits.max_turns):
            room = limits.max_context_tokens - len(builder)
            if room <= 0:
                return "max_context_tokens"
            budget = min(limits.max_turn_tokens, room)
            asked = time.monotonic()
            generation = await batcher.generate(builder.token_ids, budget, builder.messages, request.turn_seed(turn_index))
            timings["generate_s"] += time.monotonic() - asked
            turn = builder.add_action(generation.token_ids, generation.logprobs)
            if time.monotonic() >= deadline:
                return "agent_timeout"
            if generation.finish_reason == "length" or len(builder) >= limits.max_context_tokens:
                return "max_turn_tokens" if budget == limits.max_turn_tokens else "max_context_tokens"
            parsed = parse_action(turn.action_text, harness.action_format, harness.require_think)
            result, timeout = None, min(self.cfg.sandbox.command_timeout_s, deadline - time.monotonic())
            if parsed.command is not None:
                result = await sandbox.exec(parsed.command, timeout_s=timeout)
                timings["exec_s"] += result.duration_s
            pieces = builder.observe(turn, parsed, result, timeout)
            if parsed.done:
                return "done"
            if time.monotonic() >= deadline:
                return "agent_timeout"
            if len(builder) + sum(len(piece.ids) for piece in pieces) > limits.max_context_tokens:
                return "max_context_tokens"
            builder.append(turn, pieces)
        return "max_turns"


def _outcome(verifier_outcome: str, stop: StopReason) -> Outcome:
    if verifier_outcome in ("solved", "infra_error"):
        return verifier_outcome  # type: ignore[return-value]
    return "agent_limit" if stop in AGENT_LIMITS else "failed"


def run_episodes(
    runner: EpisodeRunner,
    requests: Sequence[EpisodeRequest],
    *,
    concurrency: int | None = None,
    on_done: Callable[[Trajectory], None] | None = None,
) -> list[Trajectory]:
    """:meth:`EpisodeRunner.run` on a fresh event loop (for synchronous callers)."""
    return asyncio.run(runner.run(requests, concurrency=concurrency, on_done=on_done))
