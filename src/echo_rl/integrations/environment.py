"""echo-rl's tasks and sandboxes as a tool-calling environment (TRL's ``environment_factory`` protocol).

    trainer = GRPOTrainer(model, train_dataset=Dataset.from_list([{"prompt": [...], "task": "count_lines:3"}]),
                          environment_factory=EchoEnvironment, ...)

The contract TRL 1.16 expects of an environment class (``GRPOTrainer.__init__`` and
``_generate_and_score_completions``): a no-argument constructor; ``reset(**row)`` called with the dataset row
before each rollout, whose returned string is appended to the last user message; every public method other
than ``reset``/``get_reward`` is a tool, its schema read from the signature and the docstring's ``Args:``;
``get_reward()`` scores the finished rollout. Here:

- ``reset`` reads the row's ``task`` field — ``FAMILY:SEED`` (a generated task) or a Harbor task folder —
  starts that task's sandbox (in the background, so a batch's sandboxes start concurrently) and returns the
  task's instruction;
- ``run_command(command)`` runs one shell command in that sandbox and returns echo-rl's rendering of the
  terminal output (output, notices, ``(exit_code=N)``) — the tokens ``EchoGRPOTrainer`` trains on with λ;
- ``get_reward`` runs the task's verifier (``tests/test.sh``) and stops the sandbox: 1.0 solved, else 0.0
  (None after an infrastructure error: TRL then leaves the rollout's reward out).

Sandboxes run on one background event loop shared by every instance; a sandbox is always stopped (after
its reward, at the next ``reset``, or at exit). The sandbox settings are ``EchoEnvironment.sandbox`` (a
:class:`~echo_rl.config.SandboxConfig`); set them with :func:`environment_class`.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from functools import cache
from typing import Any, ClassVar, TypeVar

from echo_rl.config import SandboxConfig
from echo_rl.errors import UserError
from echo_rl.harness.render import render_output
from echo_rl.sandbox.base import Sandbox, SandboxError
from echo_rl.tasks.corpus import resolve_tasks
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import verify

TASK_FIELD = "task"
DEFAULT_VERIFIER_TIMEOUT_S = 60.0
T = TypeVar("T")


class MissingFieldError(UserError, ValueError):
    """A dataset row lacks a field the environment needs."""


@cache
def _loop() -> asyncio.AbstractEventLoop:
    """The background event loop every environment's sandbox lives on (started once, a daemon thread)."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="echo-rl-environments", daemon=True).start()
    return loop


def _submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, _loop())


@cache
def _task(spec: str) -> Task:
    tasks, errors = resolve_tasks(spec)
    if len(tasks) != 1 or errors:
        raise UserError(f"names {len(tasks)} tasks; a row's {TASK_FIELD!r} must name exactly one", where=spec)
    return tasks[0]


def check_rows(rows: Any) -> None:
    """Raise :class:`MissingFieldError` (one line) unless every row of ``rows`` (a dataset, or a list of dicts)
    has a ``task`` field naming exactly one task."""
    columns = getattr(rows, "column_names", None)
    if columns is not None and TASK_FIELD not in columns:
        raise MissingFieldError(f"has no {TASK_FIELD!r} column (FAMILY:SEED or a task folder), which "
                                f"EchoEnvironment needs; columns: {', '.join(columns)}", where="train_dataset")
    for row in rows if columns is None else []:
        if not isinstance(row, Mapping) or TASK_FIELD not in row:
            raise MissingFieldError(f"a row has no {TASK_FIELD!r} field, which EchoEnvironment needs",
                                    where="train_dataset")


class EchoEnvironment:
    """One rollout's terminal: an echo-rl task in a sandbox (module docstring)."""

    sandbox: ClassVar[SandboxConfig] = SandboxConfig()
    _live: ClassVar[weakref.WeakSet[EchoEnvironment]] = weakref.WeakSet()

    def __init__(self) -> None:
        self._task: Task | None = None
        self._sandbox: Future[Sandbox] | None = None
        EchoEnvironment._live.add(self)

    def reset(self, **row: Any) -> str:
        """Start the sandbox of ``row['task']`` and return the task's instruction."""
        if TASK_FIELD not in row:
            raise MissingFieldError(f"has no {TASK_FIELD!r} field, which EchoEnvironment needs", where="dataset row")
        self._stop()
        self._task = _task(str(row[TASK_FIELD]))
        self._sandbox = _submit(open_task_sandbox(self._task, self.sandbox, label="echo-rl-trl"))
        return "\n\n" + self._task.instruction

    def run_command(self, command: str) -> str:
        """Run a bash command in the task's terminal and return what it printed, with its exit code.

        Args:
            command: The bash command to run, e.g. `ls -la`.
        """
        if self._sandbox is None:
            raise RuntimeError("run_command before reset")
        cfg = self.sandbox
        result = _submit(self._sandbox.result().exec(command, timeout_s=cfg.command_timeout_s)).result()
        return render_output(
            result.output,
            result.exit_code,
            timed_out=result.timed_out,
            timeout_s=cfg.command_timeout_s,
            sandbox_truncated=result.truncated,
        )

    def get_reward(self) -> float | None:
        """The verifier's reward for the sandbox's final state (1.0 solved, else 0.0), or None after an
        infrastructure error (TRL ignores a None reward, as echo-rl excludes ``infra_error`` rollouts); stops
        the sandbox."""
        if self._task is None or self._sandbox is None:
            return None
        timeout = self._task.verifier_timeout_s or DEFAULT_VERIFIER_TIMEOUT_S
        try:
            result = _submit(verify(self._task, self._sandbox.result(), timeout)).result()
        except SandboxError:  # the sandbox never started
            return None
        finally:
            self._stop()
        return None if result.outcome == "infra_error" else result.reward

    def _stop(self) -> None:
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None and sandbox.exception() is None:
            _submit(sandbox.result().stop()).result()


def environment_class(sandbox: SandboxConfig | None = None, **settings: Any) -> type[EchoEnvironment]:
    """An :class:`EchoEnvironment` subclass (TRL wants a no-argument factory) with these sandbox settings:
    a :class:`SandboxConfig`, or its fields as keywords (``backend="container"``, ``command_timeout_s=10``)."""
    cfg = sandbox or SandboxConfig.model_validate(settings)
    return type("EchoEnvironment", (EchoEnvironment,), {"sandbox": cfg})


@atexit.register
def _stop_all() -> None:
    for environment in list(EchoEnvironment._live):
        try:
            environment._stop()
        except Exception:  # noqa: BLE001 — best effort at interpreter exit
            pass
