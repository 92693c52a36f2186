"""Episodes without a policy: replay the reference solution, run the oracle, verify the untouched state.

    steps = await record_reference(task, sandbox)        # [(command, ExecResult)], one per turn
    result = await run_oracle(task, cfg.sandbox)         # solution/solve.sh, then the verifier
    result = await run_noop(task, cfg.sandbox)           # the verifier on the initial state

``record_reference`` gives expert transcripts with real observations (SFT data, the held-out env-CE set);
a ``solve.sh`` without turn markers is replayed as one turn (:func:`reference_turns`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox.base import ExecResult, Sandbox, SandboxError, retry_delay, stop_after_use
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.settings import resolve_env
from echo_rl.tasks.task import SOLUTION_SCRIPT, Task
from echo_rl.tasks.verifier import VerifierResult, verify

DEFAULT_VERIFIER_TIMEOUT_S = 120.0
DEFAULT_AGENT_TIMEOUT_S = 600.0

log = logging.getLogger(__name__)
R = TypeVar("R")


@dataclass(frozen=True)
class ReferenceStep:
    """One turn of the reference solution and what the terminal returned."""

    command: str
    result: ExecResult


ONE_TURN_END = "ECHO_RL_SOLVE_SH"


def reference_turns(task: Task) -> list[str]:
    """The reference solution as one command per agent turn: the turns of a ``solve.sh`` with turn markers,
    or, without markers, one turn that runs the whole script in a child bash (a heredoc, so that its
    ``exit`` or ``set -e`` cannot end the agent's shell). Raises :class:`UserError` saying why a task has
    no replayable reference (no ``solution/solve.sh``, or one the heredoc cannot hold)."""
    commands = task.reference_commands
    if commands is not None:
        return commands
    data = task.files.get(SOLUTION_SCRIPT)
    if data is None:
        raise UserError("has no solution/solve.sh to replay", where=f"task {task.name}")
    script = data.decode(errors="replace").rstrip("\n")
    if ONE_TURN_END in script.splitlines():
        raise UserError(f"solution/solve.sh has a line {ONE_TURN_END!r}: cannot replay it as one turn",
                        where=f"task {task.name}")
    return [f"bash <<'{ONE_TURN_END}'\n{script}\n{ONE_TURN_END}"]


async def record_reference(task: Task, sandbox: Sandbox, timeout_s: float | None = None) -> list[ReferenceStep]:
    """Run :func:`reference_turns` one per turn in ``sandbox``'s persistent shell (as an agent's commands
    run) with the task's ``[solution] env``, and return each with its result. A one-turn replay first
    uploads the solution's other files to ``/solution`` (where ``solve.sh`` finds them under Harbor). Raises
    :class:`UserError` when the task has no replayable reference or its solution env cannot be resolved,
    :class:`SandboxError` on infrastructure failure."""
    commands = reference_turns(task)
    env = resolve_env(task.solution_env, "solution.env", task)
    if task.reference_commands is None:
        for rel, data in sorted(task.subtree("solution").items()):
            await sandbox.upload(data, f"/solution/{rel}")
    return [ReferenceStep(command, await sandbox.exec(command, timeout_s=timeout_s, env=env)) for command in commands]


async def with_infra_retries(
    cfg: SandboxConfig, attempt: Callable[[], Awaitable[R]], verdict: Callable[[R], VerifierResult | None], what: str
) -> tuple[R | None, list[str]]:
    """Run ``attempt()`` up to 1 + ``cfg.infra_retries`` times, waiting :func:`retry_delay` before each, until it
    neither raises :class:`SandboxError` nor returns a result whose ``verdict`` is an ``infra_error``. Returns
    that result (None when every attempt failed) and each failed attempt's reason, each logged naming ``what``."""
    failures: list[str] = []
    for number in range(cfg.infra_retries + 1):
        await asyncio.sleep(retry_delay(cfg, number))
        try:
            result = await attempt()
        except SandboxError as err:
            failures.append(str(err))
        else:
            checked = verdict(result)
            if checked is None or checked.outcome != "infra_error":
                return result, failures
            failures.append(checked.reason)
        log.warning("%s: infrastructure error (attempt %d): %s", what, number + 1, failures[-1])
    return None, failures


async def run_oracle(
    task: Task, cfg: SandboxConfig, *, verifier_timeout_s: float | None = None, label: str = "echo-rl-oracle"
) -> VerifierResult:
    """Run ``solution/solve.sh`` (uploaded to ``/solution`` only now, with the task's ``[solution] env``)
    in a fresh sandbox, then verify.
    Infrastructure failures are retried (:func:`with_infra_retries`), then come back as ``infra_error``
    results. Timeouts are the task's own; ``verifier_timeout_s`` applies to tasks that set none."""
    solution = task.subtree("solution")
    if SOLUTION_SCRIPT not in task.files:
        raise UserError("has no solution/solve.sh", where=f"task {task.name}")
    return await _episode(task, cfg, solution, verifier_timeout_s, label)


async def run_noop(
    task: Task, cfg: SandboxConfig, *, verifier_timeout_s: float | None = None, label: str = "echo-rl-noop"
) -> VerifierResult:
    """Verify the untouched initial state of ``task`` in a fresh sandbox (should fail)."""
    return await _episode(task, cfg, None, verifier_timeout_s, label)


async def _episode(
    task: Task, cfg: SandboxConfig, solution: dict[str, bytes] | None, verifier_timeout_s: float | None, label: str
) -> VerifierResult:
    """One oracle or no-op episode, retried as :func:`with_infra_retries` says; after the last failed attempt,
    an ``infra_error`` whose reason names every attempt's failure."""
    result, failures = await with_infra_retries(
        cfg, lambda: _attempt(task, cfg, solution, verifier_timeout_s, label), lambda r: r, f"{label} of {task.name}")
    if result is not None:
        return result
    reason = f"infrastructure error ({len(failures)} attempts): " + " | ".join(failures)
    return VerifierResult(0.0, "infra_error", reason, 0.0)


async def _attempt(
    task: Task, cfg: SandboxConfig, solution: dict[str, bytes] | None, verifier_timeout_s: float | None, label: str
) -> VerifierResult:
    """Upload and run the solution (if any) in a fresh sandbox, then verify; raises :class:`SandboxError`."""
    timeout = task.verifier_timeout_s or verifier_timeout_s or DEFAULT_VERIFIER_TIMEOUT_S
    sandbox = await open_task_sandbox(task, cfg, label=label)
    try:
        if solution is not None:
            for rel, data in sorted(solution.items()):
                await sandbox.upload(data, f"/solution/{rel}")
            await sandbox.exec("bash /solution/solve.sh", timeout_s=task.agent_timeout_s or DEFAULT_AGENT_TIMEOUT_S,
                               env=resolve_env(task.solution_env, "solution.env", task))
        return await verify(task, sandbox, timeout)
    finally:
        await stop_after_use(sandbox)
