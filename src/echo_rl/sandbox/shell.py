"""The persistent-shell engine shared by every backend.

A backend supplies a :class:`ShellStream` (bytes to and from one ``bash`` inside the sandbox) and two
ways to kill processes inside the sandbox; :class:`ShellSandbox` does the rest: the start-up handshake,
the per-command protocol of :mod:`echo_rl.sandbox.protocol`, output capping, timeouts and restarts.

Timeout policy: when a command runs past its timeout, every process it started (in the sandbox's own
clock, see :class:`~echo_rl.sandbox.protocol.MarkerScanner`) is killed, so the shell comes back and stays
usable with ``cd``/variables intact. If the shell itself does not come back (a busy loop in a shell
builtin, a fork bomb that outlives two kills), every process of the sandbox is killed and a fresh shell
is started over the same filesystem: ``shell_restarted`` says so. The same happens when the shell dies
(``exit``, ``kill $$``): the filesystem survives, processes and shell state do not.
"""

from __future__ import annotations

import abc
import asyncio
import re
import time

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import ExecResult, Sandbox, SandboxError
from echo_rl.sandbox.output import CappedOutput, clean_output
from echo_rl.sandbox.protocol import MarkerScanner, bootstrap, encode


class ShellStream(abc.ABC):
    """A running ``bash`` inside a sandbox: bytes to its stdin, bytes from its stdout."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send bytes to the shell; raises ``ConnectionError`` when it is gone."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next chunk of output; ``b""`` once the shell's output has ended."""

    @abc.abstractmethod
    async def exit_status(self) -> int:
        """The exit status of the shell, after its output ended (-1 when unknown)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop talking to the shell (a backend's kill hooks take care of its processes)."""


class ShellSandbox(Sandbox):
    """A :class:`Sandbox` whose :meth:`exec` runs in one persistent bash (see module docstring)."""

    KILL_GRACE_S = 1.0
    START_TIMEOUT_S = 30.0

    def __init__(self, config: SandboxConfig):
        self.config = config
        self._shell: ShellStream | None = None
        self.shell_pid = 0  # the shell's pid inside the sandbox's pid namespace
        self._lock = asyncio.Lock()
        self._leftover = b""
        self._broken = False
        self._stopped = False
        self._fresh_shell_due = False  # reset_processes() ran: the next exec starts the fresh shell

    # ---- backend hooks -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _open_shell(self) -> ShellStream:
        """Start a fresh bash inside the sandbox (its cwd and environment set by the backend)."""

    @abc.abstractmethod
    async def _kill_started_since(self, ticks: int) -> int:
        """SIGKILL every process in the sandbox started at or after ``ticks`` (1/100 s of uptime) except
        the shell (:attr:`shell_pid`) and its ancestors; return how many there were."""

    @abc.abstractmethod
    async def _kill_all_processes(self) -> None:
        """SIGKILL every process in the sandbox, the shell included; return once they are gone."""

    # ---- shell life cycle ------------------------------------------------------------------------------

    def _limits(self) -> dict[str, int]:
        cfg = self.config
        return {
            "u": cfg.max_processes,
            "v": cfg.memory_mb * 1024,
            "f": cfg.max_file_size_mb * 1024,
            "t": cfg.cpu_time_s,
        }

    async def _start_shell(self) -> None:
        if self._stopped:
            raise SandboxError("the sandbox was stopped")
        shell = await self._open_shell()
        self._shell = shell
        ready = encode("builtin printf 'shell-pid=%d' $$")
        scanner = MarkerScanner(ready.nonce)
        seen = CappedOutput(4096)
        try:
            await shell.write(bootstrap(self.config.workdir, self._limits()).encode() + ready.data)
            async with asyncio.timeout(self.START_TIMEOUT_S):
                if not await self._pump(shell, scanner, seen):
                    raise SandboxError(f"the sandbox shell exited during start-up: {clean_output(seen.getvalue())!r}")
        except (TimeoutError, ConnectionError) as err:
            raise SandboxError(f"the sandbox shell did not start: {err or 'no answer'}") from err
        pid = re.search(rb"shell-pid=(\d+)", seen.getvalue())
        if pid is None:
            raise SandboxError(f"the sandbox shell did not start: {clean_output(seen.getvalue())!r}")
        self.shell_pid = int(pid[1])
        self._leftover = scanner.rest

    async def _restart_shell(self) -> None:
        await self._close_shell()
        await self._kill_all_processes()
        self._broken = False
        await self._start_shell()

    async def _close_shell(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            await shell.close()

    async def reset_processes(self) -> None:
        """Kill every process now; the fresh shell starts with the next :meth:`exec`, so a reset right
        before :meth:`stop` (the verifier's last one) costs no shell start."""
        async with self._lock:
            if self._shell is None and not self._fresh_shell_due:
                raise SandboxError("the sandbox is not running (start() it first)")
            await self._close_shell()
            await self._kill_all_processes()
            self._broken, self._fresh_shell_due = False, True

    # ---- exec ------------------------------------------------------------------------------------------

    async def exec(
        self,
        command: str,
        timeout_s: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ExecResult:
        wire = encode(command, cwd, env)
        timeout = self.config.command_timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            if self._fresh_shell_due and not self._stopped:
                await self._start_shell()
                self._fresh_shell_due = False
            if self._shell is None:
                raise SandboxError("the sandbox is not running (start() it first)")
            restarted = self._broken
            if restarted:
                await self._restart_shell()
            started = time.monotonic()
            out = CappedOutput(self.config.max_output_bytes)
            out.add(self._leftover)
            self._leftover = b""
            try:
                code, timed_out, alive = await self._run(wire.data, MarkerScanner(wire.nonce), out, timeout)
                if not alive and not timed_out and code is None:  # the shell was gone before the command began
                    await self._restart_shell()
                    restarted = True
                    code, timed_out, alive = await self._run(wire.data, MarkerScanner(wire.nonce), out, timeout)
                if not alive:
                    await self._restart_shell()
                    restarted = True
            except BaseException:
                self._broken = True  # cancelled or failed mid-command: the shell state is unknown
                raise
        return ExecResult(
            output=clean_output(out.getvalue()),
            exit_code=-1 if timed_out or code is None else code,
            timed_out=timed_out,
            truncated=out.truncated,
            duration_s=time.monotonic() - started,
            shell_restarted=restarted,
        )

    async def _run(
        self, data: bytes, scanner: MarkerScanner, out: CappedOutput, timeout: float
    ) -> tuple[int | None, bool, bool]:
        """Run one wire command: ``(exit status or None, timed out, shell still alive)``.

        The exit status is None when the command never began (the shell was already gone)."""
        shell = self._shell
        assert shell is not None
        try:
            async with asyncio.timeout(timeout):
                await shell.write(data)
                if await self._pump(shell, scanner, out):
                    self._leftover = scanner.rest
                    return scanner.end, False, True
        except ConnectionError:
            pass
        except TimeoutError:
            for _ in range(2):
                if scanner.begin is None or not await self._kill_started_since(scanner.begin):
                    break  # the shell itself is busy (a builtin loop): only a restart helps
                try:
                    async with asyncio.timeout(self.KILL_GRACE_S):
                        if await self._pump(shell, scanner, out):
                            self._leftover = scanner.rest
                            return None, True, True
                        return None, True, False
                except TimeoutError:
                    continue
            return None, True, False
        if scanner.begin is None:
            return None, False, False
        return await shell.exit_status(), False, False

    @staticmethod
    async def _pump(shell: ShellStream, scanner: MarkerScanner, out: CappedOutput) -> bool:
        """Read until the end marker (True) or the end of the shell's output (False)."""
        while scanner.end is None:
            chunk = await shell.read()
            if not chunk:
                out.add(scanner.flush())
                return False
            out.add(scanner.feed(chunk))
        return True
