"""Per-sandbox cgroups of the local backend: a total memory cap (no swap), a pids cap and a CPU quota.

    support = probe()                        # cached; support.reason says why not when unavailable
    group = SandboxCgroup.create(name, memory_mb=512, max_processes=64, cpus=1.0, owner=65534)
    argv = [*group.join_argv(), "bwrap", ...] # the launcher joins before it execs: all its children are in
    group.remove()                           # once its processes are gone

cgroup v2 (``/sys/fs/cgroup`` a cgroup2 mount): the groups are children of this process's cgroup, which
must be writable and list ``memory`` and ``pids`` in its ``cgroup.subtree_control`` (a delegated
subtree, or root). cgroup v1: one child in each of the ``memory``, ``pids`` and (when mounted) ``cpu``
hierarchies, under this process's cgroup there; they must be writable (root). Files written:
v2 ``memory.max``, ``memory.swap.max=0``, ``pids.max``, ``cpu.max``; v1 ``memory.limit_in_bytes``,
``memory.memsw.limit_in_bytes``, ``pids.max``, ``cpu.cfs_quota_us``. The groups are named like the
sandbox's state directory (:meth:`~echo_rl.sandbox.owner.Owner.dir_name`), so that garbage collection
finds those of dead owners (:func:`groups`).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from echo_rl.sandbox.owner import Owner

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PERIOD_US = 100_000
# sh -c JOIN FILE… -- ARGV…: write "0" (this process) to each cgroup.procs FILE, then exec ARGV.
_JOIN = 'while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class Support:
    """Where sandbox cgroups go: ``version`` 1 or 2 and the parent directory per controller, or a
    ``reason`` when they cannot be made on this machine."""

    version: int = 0
    parents: tuple[tuple[str, Path], ...] = ()
    reason: str = ""

    @property
    def available(self) -> bool:
        return bool(self.parents)


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and ``""`` → its v2 path."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _v1_mounts() -> dict[str, Path]:
    """Mount point of each v1 controller."""
    found: dict[str, Path] = {}
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 3 and fields[2] == "cgroup":
                for option in fields[3].split(","):
                    found.setdefault(option, Path(fields[1]))
    return found


@functools.cache
def probe() -> Support:
    """Whether (and where) this process can make sandbox cgroups; cached for the process."""
    try:
        own = _own_paths()
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            parent = CGROUP_ROOT / own.get("", "/").lstrip("/")
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            missing = [name for name in ("memory", "pids") if name not in enabled]
            if missing:
                return Support(reason=f"cgroup v2: {parent} does not delegate {' and '.join(missing)} to its children")
            if not os.access(parent, os.W_OK):
                return Support(reason=f"cgroup v2: {parent} is not writable by this user")
            controllers = ["memory", "pids", *(["cpu"] if "cpu" in enabled else [])]
            return Support(2, tuple((name, parent) for name in controllers))
        mounts = _v1_mounts()
        parents = []
        for name in ("memory", "pids", "cpu"):
            if name not in mounts:
                if name == "cpu":
                    continue
                return Support(reason=f"cgroup v1: no {name} hierarchy is mounted")
            parent = mounts[name] / own.get(name, "/").lstrip("/")
            if not os.access(parent, os.W_OK):
                return Support(reason=f"cgroup v1: {parent} is not writable (needs root)")
            parents.append((name, parent))
        return Support(1, tuple(parents))
    except OSError as err:
        return Support(reason=f"cgroups unreadable: {err}")


def _settings(version: int, controller: str, memory_mb: int, max_processes: int, cpus: float | None):
    """``(file, value)`` pairs to write in the group of ``controller``, in order."""
    memory = str(memory_mb << 20)
    if controller == "memory":
        return [("memory.max", memory), ("memory.swap.max", "0")] if version == 2 else [
            ("memory.limit_in_bytes", memory), ("memory.memsw.limit_in_bytes", memory)]
    if controller == "pids":
        return [("pids.max", str(max_processes))]
    if cpus is None:
        return []
    quota = max(1000, int(cpus * _PERIOD_US))
    return [("cpu.max", f"{quota} {_PERIOD_US}")] if version == 2 else [
        ("cpu.cfs_period_us", str(_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]


class SandboxCgroup:
    """The cgroup(s) of one local sandbox (see the module docstring)."""

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def create(cls, name: str, *, memory_mb: int, max_processes: int, cpus: float | None,
               owner: int | None = None) -> SandboxCgroup:
        """Make the groups (``owner``: the host uid the launcher runs as, given write access to
        ``cgroup.procs``); raises OSError when the machine refuses (see :func:`probe`)."""
        support = probe()
        if not support.available:
            raise OSError(support.reason)
        group = cls([])
        try:
            for controller, parent in support.parents:
                path = parent / name
                path.mkdir()
                group.dirs.append(path)
                for file, value in _settings(support.version, controller, memory_mb, max_processes, cpus):
                    if (path / file).exists():  # memsw / swap.max only exist with swap accounting
                        (path / file).write_text(value)
                if owner is not None:
                    for file in ("cgroup.procs", "tasks"):
                        if (path / file).exists():
                            os.chown(path / file, owner, owner)
        except OSError:
            group.remove()
            raise
        return group

    def join_argv(self) -> list[str]:
        """An argv prefix that moves the process into the groups, then execs the rest of the argv."""
        return ["/bin/sh", "-c", _JOIN, "sh", *(str(d / "cgroup.procs") for d in self.dirs), "--"]

    def pids(self) -> list[int]:
        """Host pids of the processes in the groups."""
        found: set[int] = set()
        for path in self.dirs:
            try:
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the memory cap killed (0 when the kernel does not say)."""
        for path in self.dirs:
            for file in ("memory.events", "memory.oom_control"):
                try:
                    for line in (path / file).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
                except OSError:
                    continue
        return 0

    def remove(self, timeout_s: float = 2.0) -> None:
        """Remove the groups (retrying while the kernel still lists exiting processes in them)."""
        deadline = time.monotonic() + timeout_s
        for path in self.dirs:
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
        self.dirs = []


def groups() -> list[Path]:
    """Every sandbox-named group under the parents :func:`probe` found (for garbage collection)."""
    support = probe()
    found = []
    for _, parent in support.parents:
        try:
            found += [entry for entry in parent.iterdir() if entry.is_dir() and Owner.from_dir_name(entry.name)]
        except OSError:
            continue
    return sorted(found)
