"""Nothing leaks (issue 10.5): a run SIGKILLed mid-rollout leaves no process behind (die-with-parent),
and ``gc`` removes its directories and containers — but never a live run's."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sandbox_helpers import small_config

from echo_rl.sandbox import procs
from echo_rl.sandbox.engine import connect
from echo_rl.sandbox.gc import collect_garbage
from echo_rl.sandbox.local import LocalSandbox
from echo_rl.sandbox.owner import LABEL_KEY, Owner, state_roots

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from echo_rl.sandbox.local import LocalSandbox
    from echo_rl.sandbox.container import ContainerSandbox

    async def main(label, backends):
        boxes = [LocalSandbox(label=label) if b == "local" else ContainerSandbox(label=label) for b in backends]
        info = {}
        for box in boxes:
            await box.start()
            await box.exec("sleep 4321 >/dev/null 2>&1 &")   # an agent's job, mid-rollout
            info["state_dir" if isinstance(box, LocalSandbox) else "container"] = (
                str(box.state_dir) if isinstance(box, LocalSandbox) else box.container_id)
        print(json.dumps(info), flush=True)
        await asyncio.sleep(600)

    asyncio.run(main(sys.argv[1], sys.argv[2:]))
    """
)


def _killed_run(label: str, *backends: str) -> dict[str, str]:
    """Start a 'run' in a child process, let it start sandboxes, SIGKILL it; what it had started."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, label, *backends], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line, "the child run did not start its sandboxes"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    return json.loads(line)


def _sleepers() -> list[int]:
    return procs.with_argument("sleep\x004321")


def test_killed_run_leaves_no_process_and_gc_removes_its_directory():
    label = f"gc-test-{secrets.token_hex(3)}"
    survivor = LocalSandbox(small_config(), label=label)

    async def scenario() -> None:
        await survivor.start()  # a live run's sandbox with the same label: gc must not touch it
        try:
            left = _killed_run(label, "local")
            assert not await procs.wait_gone(_sleepers(), 5), "processes outlived their run"
            assert procs.with_argument(left["state_dir"]) == []
            report = await collect_garbage(label, containers=False)
            assert report.directories == 1
            assert not Path(left["state_dir"]).exists()
            assert (await survivor.exec("echo alive")).output == "alive\n" and survivor.state_dir.exists()
        finally:
            await survivor.stop()

    asyncio.run(scenario())


@pytest.mark.container
def test_gc_removes_containers_of_a_killed_run(container_engine):
    label = f"gc-test-{secrets.token_hex(3)}"
    left = _killed_run(label, "local", "container")
    client = connect()
    assert [c.id for c in client.containers.list(all=True, filters={"label": f"{LABEL_KEY}={label}"})] == [
        left["container"]
    ]
    report = asyncio.run(collect_garbage(label))
    assert report.containers == 1 and report.directories == 1 and not report.notes
    assert client.containers.list(all=True, filters={"label": f"{LABEL_KEY}={label}"}) == []
    assert not _sleepers()


def test_gc_looks_in_both_the_memory_and_the_disk_location(monkeypatch):
    """Sandbox directories live in /dev/shm when usable, else in the temp directory (and did there before):
    gc clears a dead owner's directories in either."""
    monkeypatch.delenv("ECHO_RL_SANDBOX_ROOT", raising=False)
    label = f"gc-test-{secrets.token_hex(3)}"
    dead = Owner(socket.gethostname(), os.getpid(), (procs.start_ticks(os.getpid()) or 0) + 1)  # pid reused
    assert not dead.is_alive()
    left = []
    for root in state_roots():
        root.mkdir(parents=True, exist_ok=True)
        left.append(root / dead.dir_name(label, secrets.token_hex(6)))
        (left[-1] / "root" / "home").mkdir(parents=True)
    report = asyncio.run(collect_garbage(label, containers=False))
    assert report.directories == len(left) and not any(path.exists() for path in left)
