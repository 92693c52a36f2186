"""Benchmark: what a sandboxed terminal costs, local (bubblewrap) vs container (podman over the Docker API)
vs a plain ``subprocess.run(['bash', '-c', …])`` baseline, all measured in one run.

    start         sandbox start (a fresh namespace/container and its persistent shell ready); baseline:
                  one ``bash -c true`` process
    exec('true')  one command round trip in a started sandbox; baseline: ``subprocess.run(['bash','-c','true'])``
    1 MB output   a command printing 1,000,000 bytes, read, capped and cleaned; baseline: subprocess.run
                  with captured output
    N concurrent  N sandboxes started at once, each running one command, then stopped: wall time of the
                  whole batch and the failures (baseline: N concurrent ``bash -c`` processes)

Figures are medians over repetitions; ratios are container/local and local/baseline. Targets (2-core
machine): local start ≤ 15 ms, exec round trip ≤ 3 ms, 64 concurrent sandboxes without failures,
local start ≥ 10× faster than a container start.

    python benchmarks/sandbox.py [--quick] [--no-container]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import Sandbox, SandboxError
from echo_rl.sandbox.container import ContainerSandbox
from echo_rl.sandbox.engine import connect
from echo_rl.sandbox.local import LocalSandbox

MEGABYTE = "head -c 1000000 /dev/zero | tr '\\0' x"
CONFIG = SandboxConfig(max_output_bytes=2_000_000, command_timeout_s=120)
LABEL = "echo-rl-bench"


def factory(backend: str) -> Callable[[], Sandbox]:
    if backend == "local":
        return lambda: LocalSandbox(CONFIG, label=LABEL)
    return lambda: ContainerSandbox(CONFIG, label=LABEL)


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def bench_start(make: Callable[[], Sandbox], reps: int) -> float:
    times = []
    for _ in range(reps):
        sandbox = make()
        times.append(await timed(sandbox.start))
        await sandbox.stop()
    return statistics.median(times)


async def bench_exec(make: Callable[[], Sandbox], command: str, reps: int) -> float:
    async with make() as sandbox:
        for _ in range(3):  # warm-up
            await sandbox.exec(command)
        times = [await timed(lambda: sandbox.exec(command)) for _ in range(reps)]
    return statistics.median(times)


async def bench_concurrent(make: Callable[[], Sandbox], n: int) -> tuple[float, int]:
    """Wall time for N sandboxes started together, each running a command, stopped; and failures."""

    async def one() -> bool:
        sandbox = make()
        try:
            await sandbox.start()
            result = await sandbox.exec("echo ok")
            return result.output == "ok\n"
        except SandboxError:
            return False
        finally:
            await sandbox.stop()

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started, results.count(False)


def baseline_run(command: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        subprocess.run(["bash", "-c", command], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def baseline_concurrent(n: int) -> tuple[float, int]:
    async def one() -> bool:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", "echo ok", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        return out == b"ok\n"

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started, results.count(False)


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.1f}x"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, N up to 8")
    parser.add_argument("--no-container", action="store_true", help="skip the container backend")
    args = parser.parse_args()
    start_reps, exec_reps, mb_reps = (10, 50, 5) if args.quick else (40, 300, 15)
    container_reps = 3 if args.quick else 10
    counts = (1, 8) if args.quick else (1, 8, 32, 64)

    container = not args.no_container
    if container:
        try:
            connect()
        except SandboxError as err:
            print(f"container backend skipped: {err}")
            container = False

    rows: list[tuple[str, float | None, float | None, float | None, str]] = []
    local, cont = factory("local"), factory("container")
    rows.append((
        "start",
        await bench_start(local, start_reps),
        await bench_start(cont, container_reps) if container else None,
        baseline_run("true", start_reps),
        "",
    ))
    rows.append((
        "exec('true')",
        await bench_exec(local, "true", exec_reps),
        await bench_exec(cont, "true", exec_reps) if container else None,
        baseline_run("true", exec_reps),
        "",
    ))
    rows.append((
        "1 MB output",
        await bench_exec(local, MEGABYTE, mb_reps),
        await bench_exec(cont, MEGABYTE, mb_reps) if container else None,
        baseline_run(MEGABYTE, mb_reps),
        "",
    ))
    for n in counts:
        local_s, local_fail = await bench_concurrent(local, n)
        cont_s, cont_fail = await bench_concurrent(cont, n) if container else (None, 0)
        base_s, base_fail = await baseline_concurrent(n)
        fails = f"failures: local {local_fail}, container {cont_fail if container else 'n/a'}, baseline {base_fail}"
        rows.append((f"{n} concurrent", local_s, cont_s, base_s, fails))

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"Python {platform.python_version()}")
    header = f"{'metric':<15} {'local':>11} {'container':>11} {'baseline':>11} {'cont/local':>10} {'local/base':>10}"
    print(header)
    print("-" * len(header))
    for name, loc, con, base, note in rows:
        print(f"{name:<15} {ms(loc):>11} {ms(con):>11} {ms(base):>11} {ratio(con, loc):>10} {ratio(loc, base):>10}"
              + (f"  {note}" if note else ""))


if __name__ == "__main__":
    asyncio.run(main())
