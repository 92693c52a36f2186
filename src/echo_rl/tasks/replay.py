"""Episodes without a policy: replay the reference solution, run the oracle, verify the untouched state.

    steps = await record_reference(task, sandbox)        # [(command, ExecResult)], one per turn
    result = await run_oracle(task, cfg.sandbox)         # solution/solve.sh, then the verifier
    result = await run_noop(task, cfg.sandbox)           # the verifier on the initial state

``record_reference`` gives expert transcripts with real observations (SFT data, the held-out env-CE set).
"""

from __future__ import annotations

from dataclasses import dataclass

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.sandbox.base import ExecResult, Sandbox, SandboxError
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.settings import resolve_env
from echo_rl.tasks.task import SOLUTION_SCRIPT, Task
from echo_rl.tasks.verifier import VerifierResult, verify

DEFAULT_VERIFIER_TIMEOUT_S = 120.0
DEFAULT_AGENT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ReferenceStep:
    """One turn of the reference solution and what the terminal returned."""

    command: str
    result: ExecResult


async def record_reference(task: Task, sandbox: Sandbox, timeout_s: float | None = None) -> list[ReferenceStep]:
    """Run ``task.reference_commands`` one per turn in ``sandbox``'s persistent shell (as an agent's
    commands run) and return each with its result. Raises :class:`UserError` when the task has no
    per-turn reference solution, :class:`SandboxError` on infrastructure failure."""
    commands = task.reference_commands
    if commands is None:
        raise UserError("has no per-turn reference solution (solution/solve.sh with turn markers)",
                        where=f"task {task.name}")
    return [ReferenceStep(command, await sandbox.exec(command, timeout_s=timeout_s)) for command in commands]


async def run_oracle(
    task: Task, cfg: SandboxConfig, *, verifier_timeout_s: float | None = None, label: str = "echo-rl-oracle"
) -> VerifierResult:
    """Run ``solution/solve.sh`` (uploaded to ``/solution`` only now, with the task's ``[solution] env``)
    in a fresh sandbox, then verify.
    Infrastructure failures come back as ``infra_error`` results. Timeouts are the task's own;
    ``verifier_timeout_s`` applies to tasks that set none."""
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
    timeout = task.verifier_timeout_s or verifier_timeout_s or DEFAULT_VERIFIER_TIMEOUT_S
    try:
        sandbox = await open_task_sandbox(task, cfg, label=label)
    except SandboxError as err:
        return VerifierResult(0.0, "infra_error", f"sandbox error: {err}", 0.0)
    try:
        if solution is not None:
            for rel, data in sorted(solution.items()):
                await sandbox.upload(data, f"/solution/{rel}")
            await sandbox.exec("bash /solution/solve.sh", timeout_s=task.agent_timeout_s or DEFAULT_AGENT_TIMEOUT_S,
                               env=resolve_env(task.solution_env, "solution.env", task))
        return await verify(task, sandbox, timeout)
    except SandboxError as err:
        return VerifierResult(0.0, "infra_error", f"sandbox error: {err}", 0.0)
    finally:
        await sandbox.stop()
