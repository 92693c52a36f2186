"""Who owns a sandbox resource: the run's label and the owning process, so that leftovers can be found.

Every local sandbox directory is named ``<label>.<pid>-<start>.<random>`` under :func:`state_root`, and
every container and image carries the labels :data:`LABEL_KEY` (the run's label) and :data:`OWNER_KEY`
(``host:pid:start``). A resource whose owning process is gone (same pid with another start time means a
reused pid) is garbage; :mod:`echo_rl.sandbox.gc` removes it.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from echo_rl.sandbox.procs import start_ticks

LABEL_KEY = "echo-rl.label"
OWNER_KEY = "echo-rl.owner"
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def check_label(label: str) -> str:
    """Return ``label`` if it is a valid run label (letters, digits, ``_``, ``-``; at most 64)."""
    if not _LABEL.match(label):
        raise ValueError(f"invalid sandbox label {label!r}: use letters, digits, '_' and '-' (at most 64)")
    return label


MEMORY_TMP = "/dev/shm"
MIN_MEMORY_TMP_FREE = 1 << 30


def state_root() -> Path:
    """Where local sandbox directories live: ``$ECHO_RL_SANDBOX_ROOT``, else a per-user folder in
    :func:`scratch_dir`."""
    configured = os.environ.get("ECHO_RL_SANDBOX_ROOT")
    return Path(configured) if configured else scratch_dir() / f"echo-rl-sandboxes-{os.getuid()}"


def state_roots() -> list[Path]:
    """Every place local sandbox directories may be (for garbage collection): ``$ECHO_RL_SANDBOX_ROOT``,
    else both the memory and the disk location — a run that found ``/dev/shm`` unusable, or an echo-rl
    from before sandboxes moved there, left its directories in the system temp directory."""
    root = state_root()
    if os.environ.get("ECHO_RL_SANDBOX_ROOT"):
        return [root]
    return list(dict.fromkeys([root, Path(tempfile.gettempdir()) / root.name]))


@functools.cache
def scratch_dir() -> Path:
    """``/dev/shm`` when it is a memory file system that allows executables and has at least 1 GiB free,
    else the system temp directory. In memory, creating and removing a sandbox's directory tree takes
    ~0.8 + 0.6 ms instead of 2-5 + 3 ms on ext4, and many sandboxes starting and stopping at once do not
    queue on the disk's journal (the sandbox's ``/tmp`` is a tmpfs anyway)."""
    try:
        info = os.statvfs(MEMORY_TMP)
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            fs_type = next(
                (line.split()[2] for line in mounts if line.split()[1:2] == [MEMORY_TMP]),
                "",
            )
    except OSError:
        return Path(tempfile.gettempdir())
    usable = fs_type == "tmpfs" and not info.f_flag & (os.ST_NOEXEC | os.ST_RDONLY) and os.access(MEMORY_TMP, os.W_OK)
    return (
        Path(MEMORY_TMP)
        if usable and info.f_bavail * info.f_frsize >= MIN_MEMORY_TMP_FREE
        else Path(tempfile.gettempdir())
    )


@dataclass(frozen=True)
class Owner:
    """A process that owns sandboxes, identified across pid reuse by its start time."""

    host: str
    pid: int
    start: int

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, start_ticks(pid) or 0)

    def is_alive(self) -> bool:
        """False only when the owner is certainly gone: on this host, and its pid is dead or reused."""
        if self.host != socket.gethostname():
            return True
        return start_ticks(self.pid) == self.start

    def tag(self) -> str:
        """The value of the :data:`OWNER_KEY` label."""
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def from_tag(cls, tag: str) -> Owner | None:
        """Parse an :data:`OWNER_KEY` label value (None if malformed)."""
        parts = tag.rsplit(":", 2)
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]))

    def dir_name(self, label: str, unique: str) -> str:
        """The name of a local sandbox directory of this owner."""
        return f"{label}.{self.pid}-{self.start}.{unique}"

    @classmethod
    def from_dir_name(cls, name: str) -> tuple[str, Owner] | None:
        """``(label, owner)`` of a local sandbox directory name, or None if it is not one."""
        match = re.fullmatch(r"([A-Za-z0-9_-]+)\.(\d+)-(\d+)\.[0-9a-f]+", name)
        if match is None:
            return None
        return match[1], cls(socket.gethostname(), int(match[2]), int(match[3]))
