"""The warm pool: bounded, never hands out a used sandbox, keeps a replacement warm, cleans up."""

from __future__ import annotations

import asyncio

import pytest
from sandbox_helpers import LABEL, live_children, small_config

from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.local import LocalSandbox
from echo_rl.sandbox.pool import SandboxPool


def _factory() -> LocalSandbox:
    return LocalSandbox(small_config(), label=LABEL)


def test_pool_is_bounded_and_replaces_released_sandboxes():
    async def scenario() -> None:
        async with SandboxPool(_factory, size=2) as pool:
            first, second = await pool.acquire(), await pool.acquire()
            await first.exec("echo secret > /tmp/left-by-episode")
            waiting = asyncio.create_task(pool.acquire())
            await asyncio.sleep(0.3)
            assert not waiting.done(), "a third sandbox while two are alive"
            await pool.release(first)
            third = await asyncio.wait_for(waiting, 30)
            assert third is not first and third is not second
            assert (await third.exec("cat /tmp/left-by-episode")).exit_code == 1, "state leaked between episodes"
            await pool.release(second)
            await pool.release(third)
            for _ in range(300):
                if pool.idle == 2:
                    break
                await asyncio.sleep(0.01)
            assert pool.idle == 2, "released sandboxes are replaced by warm ones"
            warm = await pool.acquire()
            assert pool.idle == 1 and (await warm.exec("echo warm")).output == "warm\n"
            await pool.release(warm)
        assert not live_children()

    asyncio.run(scenario())


def test_failed_start_frees_the_slot():
    attempts = []

    def flaky() -> LocalSandbox:
        attempts.append(1)
        launcher = "bwrap" if len(attempts) > 1 else "no-such-launcher"  # the first start fails
        return LocalSandbox(small_config(), label=LABEL, launcher=launcher)  # type: ignore[arg-type]

    async def scenario() -> None:
        async with SandboxPool(flaky, size=1) as pool:
            with pytest.raises(SandboxError):
                await pool.acquire()
            async with pool.sandbox() as sandbox:
                assert (await sandbox.exec("echo ok")).output == "ok\n"

    asyncio.run(scenario())
    assert not live_children()
