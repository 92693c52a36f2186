"""Host-side process helpers (Linux ``/proc``): who descends from whom, when it started, kill, wait."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterable

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields 3… of ``/proc/PID/stat`` (after the command name), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in 1/100 s since boot (the unit of ``/proc/uptime``); None if gone."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19]) * 100 // _TICKS_PER_S


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` in the process tree (children, grandchildren, …)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def ancestors(pid: int) -> list[int]:
    """``pid`` and its parents up to (excluding) pid 1 of the host."""
    chain = []
    while pid > 1 and (fields := _stat(pid)) is not None:
        chain.append(pid)
        pid = int(fields[1])
    return chain


def namespace_pid(pid: int) -> int | None:
    """The pid of host process ``pid`` inside its own (innermost) pid namespace."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        return None
    return None


def kill(pids: Iterable[int]) -> None:
    """SIGKILL each pid (those already gone are ignored)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


async def wait_gone(pids: Iterable[int], timeout_s: float = 5.0) -> list[int]:
    """Poll until every pid is gone (or a zombie); return those still alive after ``timeout_s``."""
    left = [pid for pid in pids if alive(pid)]
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.002)
        left = [pid for pid in left if alive(pid)]
    return left


def with_argument(text: str) -> list[int]:
    """Pids of the processes whose command line contains ``text`` (e.g. a sandbox directory)."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if needle in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found
