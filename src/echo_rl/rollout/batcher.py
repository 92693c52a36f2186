"""Batched generation across all live episodes.

Episodes ``await batcher.generate(ids, limit, messages)`` concurrently; the policy runs on a worker
thread of its own, so sandbox I/O goes on meanwhile. Two modes, by what the policy offers:

- continuous (:attr:`Policy.continuous`, the transformers backend): every request goes straight to the
  policy's :meth:`~echo_rl.rollout.policy.base.Policy.serve` loop, joins the rows being decoded at the
  next step and is answered as soon as its own row finishes;
- lockstep (every other backend): one ``generate`` call per step, made once every live episode is
  waiting, or once the first waiting one has waited ``max_wait_s`` while the policy was idle — a slow
  command never holds the others longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from echo_rl.futures import settle
from echo_rl.rollout.policy.base import Generation, Policy, Request, SamplingParams


@dataclass
class _Pending:
    ids: list[int]
    limit: int
    messages: list[dict[str, str]]
    seed: int | None
    future: asyncio.Future[Generation]
    arrived: float = field(default_factory=time.monotonic)


class GenerationBatcher:
    """Use as ``async with GenerationBatcher(...) as batcher``; episodes run inside
    ``with batcher.member():`` so that, in lockstep mode, the batcher knows how many to wait for.
    Every request samples with ``sampling``. ``batch_sizes`` collects the rows of every policy call
    (lockstep) or forward pass (continuous)."""

    def __init__(self, policy: Policy, sampling: SamplingParams, *, max_wait_s: float = 0.05) -> None:
        self.policy = policy
        self.sampling = sampling
        self.max_wait_s = max_wait_s
        self.live = 0
        self.batch_sizes: list[int] = []
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="echo-rl-policy")
        self._inbox: queue.Queue[Request | None] = queue.Queue()
        self._waiting: set[asyncio.Future[Generation]] = set()
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._idle_since = time.monotonic()
        self._task: asyncio.Future[None] | None = None

    async def __aenter__(self) -> GenerationBatcher:
        if self.policy.continuous:
            loop = asyncio.get_running_loop()
            self._task = loop.run_in_executor(
                self._worker, lambda: self.policy.serve(self._inbox, self.sampling, batch_sizes=self.batch_sizes)
            )
            self._task.add_done_callback(self._serving_ended)
        else:
            self._task = asyncio.create_task(self._lockstep())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        if self.policy.continuous:
            self._inbox.put(None)
        else:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._worker.shutdown(wait=False)

    @contextlib.contextmanager
    def member(self) -> Iterator[None]:
        """Count the caller as a live episode (one the next lockstep batch waits for) while inside."""
        self.live += 1
        try:
            yield
        finally:
            self.live -= 1
            self._wake.set()

    async def generate(
        self, ids: list[int], limit: int, messages: list[dict[str, str]], seed: int | None = None
    ) -> Generation:
        """Sample one continuation of ``ids`` (at most ``limit`` tokens; from ``seed``'s own random stream
        when given). Raises what the policy raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Generation] = loop.create_future()
        if not self.policy.continuous:
            self._pending.append(_Pending(list(ids), limit, list(messages), seed, future))
            self._wake.set()
            return await future
        assert self._task is not None
        if self._task.done():
            raise RuntimeError("the policy's serving thread has stopped")
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        reply = lambda result: loop.call_soon_threadsafe(settle, future, result)
        self._inbox.put(Request(list(ids), limit, reply, seed))
        return await future

    def _serving_ended(self, task: asyncio.Future[None]) -> None:
        """A serving thread that died must not leave episodes waiting forever."""
        error = None if task.cancelled() else task.exception()
        for future in list(self._waiting):
            settle(future, error or RuntimeError("the policy's serving thread has stopped"))

    async def _lockstep(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                if len(self._pending) < self.live:
                    wait = max(self._pending[0].arrived, self._idle_since) + self.max_wait_s - time.monotonic()
                    if wait > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), wait)
                        self._wake.clear()
                        continue
                batch, self._pending = self._pending, []
                await self._call(batch)

    async def _call(self, batch: list[_Pending]) -> None:
        self.batch_sizes.append(len(batch))
        loop = asyncio.get_running_loop()
        try:
            generations = await loop.run_in_executor(
                self._worker,
                lambda: self.policy.generate(
                    [p.ids for p in batch],
                    [p.limit for p in batch],
                    self.sampling,
                    conversations=[p.messages for p in batch],
                    seeds=[p.seed for p in batch],
                ),
            )
        except Exception as err:  # noqa: BLE001 - handed to every waiting episode
            for pending in batch:
                settle(pending.future, err)
        else:
            for pending, generation in zip(batch, generations, strict=True):
                settle(pending.future, generation)
        self._idle_since = time.monotonic()
