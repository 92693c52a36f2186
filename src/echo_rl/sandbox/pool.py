"""A bounded pool of warm sandboxes.

At most ``size`` sandboxes are alive at once (in use, idle, or starting). :meth:`SandboxPool.acquire`
hands out an idle warm sandbox when there is one and starts one otherwise; :meth:`SandboxPool.release`
never gives a used sandbox to anyone again: it stops it and starts a fresh replacement in the background
(new filesystem, new processes), so the next acquire finds it warm. Nothing an episode did can leak into
the next one.

    pool = SandboxPool(lambda: LocalSandbox(cfg), size=8)
    async with pool.sandbox() as sb:
        await sb.exec("ls")
    await pool.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from echo_rl.sandbox.base import Sandbox


class SandboxPool:
    """Reuses warm sandboxes made by ``factory`` (an unstarted sandbox per call); see module docstring."""

    def __init__(self, factory: Callable[[], Sandbox], size: int):
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self._factory = factory
        self.size = size
        self._idle: list[Sandbox] = []
        self._alive = 0
        self._cond = asyncio.Condition()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def idle(self) -> int:
        """Warm sandboxes waiting for an :meth:`acquire`."""
        return len(self._idle)

    async def acquire(self) -> Sandbox:
        """A started sandbox for the caller's exclusive use; waits while ``size`` are alive and none idle.
        Raises :class:`~echo_rl.sandbox.base.SandboxError` when a new one cannot start."""
        async with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the sandbox pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._alive < self.size:
                    self._alive += 1
                    break
                await self._cond.wait()
        try:
            sandbox = self._factory()
            await sandbox.start()
        except BaseException:
            await self._forget()
            raise
        return sandbox

    async def release(self, sandbox: Sandbox) -> None:
        """Give a sandbox back: it is stopped and replaced by a fresh warm one in the background."""
        task = asyncio.create_task(self._recycle(sandbox))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def prewarm(self, count: int) -> None:
        """Start up to ``count`` idle sandboxes now (bounded by the pool size)."""
        async with self._cond:
            count = min(count, self.size - self._alive)
            self._alive += count
        await asyncio.gather(*(self._refill() for _ in range(count)))

    @contextlib.asynccontextmanager
    async def sandbox(self) -> AsyncIterator[Sandbox]:
        """``async with pool.sandbox() as sb``: acquire, then release however the block ends."""
        sandbox = await self.acquire()
        try:
            yield sandbox
        finally:
            await self.release(sandbox)

    async def close(self) -> None:
        """Wait for replacements in flight and stop every idle sandbox. Idempotent."""
        self._closed = True
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        async with self._cond:
            idle, self._idle = self._idle, []
            self._alive -= len(idle)
            self._cond.notify_all()
        await asyncio.gather(*(sandbox.stop() for sandbox in idle), return_exceptions=True)

    async def _recycle(self, sandbox: Sandbox) -> None:
        try:
            await sandbox.stop()
        finally:
            if self._closed:
                await self._forget()
            else:
                await self._refill()

    async def _refill(self) -> None:
        """Start a replacement for a slot already counted in ``_alive``; free the slot if it fails."""
        try:
            sandbox = self._factory()
            await sandbox.start()
        except Exception:
            await self._forget()  # the next acquire tries again and reports the error to its caller
            return
        async with self._cond:
            if self._closed:
                self._alive -= 1
            else:
                self._idle.append(sandbox)
            self._cond.notify()
        if self._closed:
            await sandbox.stop()

    async def _forget(self) -> None:
        async with self._cond:
            self._alive -= 1
            self._cond.notify()

    async def __aenter__(self) -> SandboxPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
