"""The sandbox contract shared by every backend, the episode loop and the verifier.

A sandbox is an isolated machine state with ONE persistent bash in it: ``cd``, exported variables and
functions persist across :meth:`Sandbox.exec` calls, as in a real terminal. All methods are coroutines so
that many episodes run concurrently on one event loop.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from echo_rl.config import SandboxConfig

log = logging.getLogger(__name__)

# Files in ``/``, the parent of ``/tests``, that a test runner there reads as its own configuration (pytest
# loads ``/conftest.py`` for ``pytest /tests/…`` and takes its rootdir from the ini files): the agent's never
# reach the verifier (:meth:`Sandbox.final_state`).
RUNNER_FILES = ("conftest.py", "pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "setup.py")


class SandboxError(Exception):
    """The sandbox infrastructure failed (could not start, engine error, died): an ``infra_error``,
    never the agent's fault."""


async def stop_after_use(sandbox: Sandbox) -> None:
    """Stop ``sandbox`` once its work is done, logging a :class:`SandboxError` instead of raising it: a
    verdict or transcript already obtained stays valid when removing the sandbox fails (an engine error on
    ``remove``), so it is neither lost nor re-run as an infrastructure failure. What is left behind is
    removed by :func:`echo_rl.sandbox.gc.collect_garbage` (a run's start-up, ``echo-rl sandbox gc``)."""
    try:
        await sandbox.stop()
    except SandboxError as err:
        log.warning("could not remove a finished sandbox (echo-rl sandbox gc removes it): %s", err)


def retry_delay(cfg: SandboxConfig, attempt: int) -> float:
    """Seconds to wait before attempt ``attempt`` (0-based) of an episode whose sandbox failed
    (:class:`SandboxError`, up to ``cfg.infra_retries`` retries): 0, then ``cfg.retry_backoff_s`` doubling."""
    return cfg.retry_backoff_s * 2 ** (attempt - 1) if attempt else 0.0


@dataclass(frozen=True)
class ExecResult:
    """What one command returned.

    ``output`` is stdout and stderr interleaved in order, ANSI escapes and carriage-return noise removed,
    invalid UTF-8 replaced; ``truncated`` says the command printed more than the in-memory cap.
    ``exit_code`` is -1 when ``timed_out``. ``shell_restarted`` says the persistent shell died (``exit``,
    killed itself) or had to be killed and a fresh one was started in the same filesystem.
    """

    output: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0
    shell_restarted: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Sandbox(abc.ABC):
    """An isolated shell. Use as ``async with sandbox: await sandbox.exec("ls")``."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Create the isolated environment and its persistent shell. Raises :class:`SandboxError`."""

    @abc.abstractmethod
    async def exec(
        self,
        command: str,
        timeout_s: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        """Run ``command`` in the persistent shell. A timeout kills the command's whole process group and
        leaves the shell usable. ``cwd``/``env`` apply to this command only."""

    @abc.abstractmethod
    async def upload(self, source: Path | bytes, dest: str) -> None:
        """Copy a host file or directory (or raw bytes) to absolute path ``dest`` inside the sandbox."""

    @abc.abstractmethod
    async def download(self, source: str) -> bytes:
        """Read the file at ``source`` inside the sandbox. Raises FileNotFoundError when missing."""

    @abc.abstractmethod
    async def reset_processes(self) -> None:
        """Kill every process in the sandbox (the agent's background jobs included) before returning; the
        next :meth:`exec` runs in a fresh shell over the same filesystem. The verifier calls this before it
        runs, so nothing the agent left running can touch ``/tests`` or ``/logs/verifier`` afterwards."""

    @abc.abstractmethod
    def final_state(self) -> contextlib.AbstractAsyncContextManager[Sandbox]:
        """``async with sandbox.final_state() as box:`` — kill every process the agent left (whatever it
        replaced or left running), then give a sandbox holding the agent's final files whose tools the agent
        could not have replaced, for the verifier. Container backend: a fresh container from the pristine
        task image with the agent's changes outside the system directories copied in (stopped on leaving);
        local backend: this sandbox, its host directories and their links restored (it runs on the host's
        read-only ``/usr``). On both, the agent's :data:`RUNNER_FILES` in ``/`` are left out. This sandbox
        stays usable afterwards."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Kill every process and remove every resource of this sandbox. Idempotent."""

    async def attach(self) -> int:
        """Run an interactive bash inside this started sandbox on the caller's terminal (same filesystem,
        limits and network as :meth:`exec`) and return its exit status when the person leaves it."""
        raise NotImplementedError(f"{type(self).__name__} has no interactive shell")

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
