"""Final-state checks for generated tasks. Runs INSIDE the sandbox, as ``/tests/checklib.py``.

Standard library only (the sandbox's ``python3``). The verifier runs ``python3 -I -B -S /tests/check.py``
in the task's workdir: isolated mode without ``site``, so nothing the agent left in site-packages,
``PYTHON*`` variables or the working directory is imported. Every episode's verification starts this
interpreter, so only what every check needs is imported up front; the modules for running agent code
(``subprocess``, ``signal``, ``tempfile``) are imported by the functions that use them (~25 ms less a
start). Each ``expect_*`` either returns or exits with status 1 after printing ``FAIL: <why>``; the first
failure ends the check.

Checks read only regular files (a FIFO or device named like the answer could block the verifier). Agent
code that a check must execute runs through :func:`run`, which kills every stray process afterwards, so
nothing the agent's code spawned can touch the reward file once the check has decided.
"""

from __future__ import annotations

import os
import stat
import sys

MAX_BYTES = 1 << 20
_SAFE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


def fail(why: str) -> None:
    print(f"FAIL: {why}")
    sys.exit(1)


def expect(condition: bool, why: str) -> None:
    if not condition:
        fail(why)


def text(path: str) -> str:
    """The content of the regular file ``path`` (fails when missing, not a regular file, or huge)."""
    try:
        info = os.stat(path)
    except OSError:
        fail(f"{path} does not exist")
    expect(stat.S_ISREG(info.st_mode), f"{path} is not a regular file")
    expect(info.st_size <= MAX_BYTES, f"{path} is too large")
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def file_lines(path: str) -> list[str]:
    """Lines of ``path`` with trailing whitespace and trailing blank lines dropped."""
    rows = [row.rstrip() for row in text(path).splitlines()]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def expect_text(path: str, expected: str) -> None:
    """``path`` holds ``expected`` (surrounding whitespace ignored)."""
    got = text(path).strip()
    expect(got == expected, f"{path} holds {got[:40]!r}, expected {expected!r}")


def expect_lines(path: str, expected: list[str]) -> None:
    """``path`` has exactly these lines (trailing whitespace ignored)."""
    expect(file_lines(path) == expected, f"{path} does not have the expected lines")


def expect_commented_out(path: str, rows: list[str], index: int) -> None:
    """``path`` has ``rows`` with only ``rows[index]`` commented out (``#``, any spacing)."""
    got = file_lines(path)
    same = len(got) == len(rows) and all(g == r for i, (g, r) in enumerate(zip(got, rows)) if i != index)
    expect(same, f"{path}: lines other than line {index + 1} changed")
    expect(got[index].startswith("#") and got[index].lstrip("# ") == rows[index], f"{path}: line {index + 1} "
           "is not the original job commented out")


def expect_abbrev(path: str, full: str, shortest: int) -> None:
    """``path`` holds an abbreviation of ``full`` (e.g. a commit id) at least ``shortest`` long."""
    got = text(path).strip()
    expect(len(got) >= shortest and full.startswith(got), f"{path} holds {got[:40]!r}, not an id of {full[:7]}")


def expect_exists(path: str) -> None:
    expect(os.path.lexists(path), f"{path} is missing")


def expect_missing(path: str) -> None:
    expect(not os.path.lexists(path), f"{path} still exists")


def expect_mode(path: str, mode: int) -> None:
    """The permission bits of ``path`` are ``mode`` (e.g. ``0o600``)."""
    got = stat.S_IMODE(os.lstat(path).st_mode) if os.path.lexists(path) else None
    expect(got == mode, f"{path} has mode {oct(got) if got is not None else 'none'}, expected {oct(mode)}")


def expect_files(folder: str, expected: list[str]) -> None:
    """The regular files under ``folder`` are exactly ``expected`` (paths relative to it, any order)."""
    found = sorted(
        os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
    )
    expect(found == sorted(expected), f"{folder} holds {found}, expected {sorted(expected)}")


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_strays() -> None:
    """Kill every process that started since this check did (what the agent's code spawned, however
    detached), sparing this process, its ancestors and the sandbox's own, older processes."""
    import signal

    keep, pid = set(), os.getpid()
    while pid > 0 and pid not in keep:
        keep.add(pid)
        info = _stat(pid)
        pid = info[0] if info else 0
    mine = _stat(os.getpid())
    for entry in os.listdir("/proc"):
        info = _stat(entry) if entry.isdigit() and int(entry) not in keep else None
        if mine and info and info[1] >= mine[1]:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def run(argv: list[str], timeout: float = 10.0) -> tuple[int, str]:
    """Run ``argv`` (agent-controlled code included) with a clean environment; returns (exit code,
    output). Output goes to a file, not a pipe, so a detached child holding it open cannot stall the check;
    every process it left behind is killed before this returns. A timeout counts as exit code -1."""
    import subprocess
    import tempfile

    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(argv, env=_SAFE_ENV, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as err:
            return -1, str(err)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = -1
        kill_strays()
        proc.wait()
        out.seek(0)
        return code, out.read(MAX_BYTES).decode("utf-8", errors="replace")


def git(repo: str, *args: str) -> str:
    """Output of ``git -C repo ARGS`` ignoring global/system config and hooks ('' when it fails)."""
    import subprocess

    env = dict(_SAFE_ENV, HOME="/nonexistent", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    argv = ["git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-C", repo, *args]
    try:
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=20, check=False)
    except (subprocess.TimeoutExpired, OSError):
        return ""
    return proc.stdout.decode("utf-8", errors="replace").strip() if proc.returncode == 0 else ""


def expect_output(argv: list[str], expected: str) -> None:
    """``argv`` (see :func:`run`) exits 0 and prints ``expected`` (surrounding whitespace ignored)."""
    code, output = run(argv)
    expect(code == 0 and output.strip() == expected, f"{argv[0]} printed {output.strip()[-80:]!r}, expected "
           f"{expected!r}")
