"""A size-bounded file system for a local sandbox's state directory (its writable ``/``).

    if can_bound(): mount_bounded(state_dir, size_mb=2048, owner=65534)   # before anything is made in it
    release(state_dir)                                                   # unmount (if mounted) and remove

As root the state directory is a tmpfs of its own with ``size=`` the sandbox's ``storage_mb`` (and one
inode per 4 KiB of it), so a disk filler gets ``ENOSPC`` there and nothing else fills up; its pages are
also charged to the sandbox's memory cgroup when it has one. Without root (no mount permission) the
directory is an ordinary one under :func:`~echo_rl.sandbox.owner.state_root` and only the per-file size
limit (``ulimit -f``) holds: :func:`can_bound` says so.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2


def can_bound() -> str | None:
    """None when state directories can be bounded here, else the reason they cannot."""
    return None if os.geteuid() == 0 else "the state directory's size is not bounded (mounting a tmpfs needs root)"


def mount_bounded(path: Path, *, size_mb: int, owner: int | None) -> None:
    """Mount a tmpfs of ``size_mb`` MiB on the (empty) directory ``path``, mode 0711, owned by ``owner``
    (None: root). Raises OSError when the kernel refuses."""
    options = f"size={size_mb}m,nr_inodes={max(1024, size_mb * 256)},mode=0711"
    if owner is not None:
        options += f",uid={owner},gid={owner}"
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {path}: {os.strerror(err)}")


def release(path: Path) -> bool:
    """Unmount ``path`` if it is a mount point (its content goes with it); True if it was one."""
    if not os.path.ismount(path):
        return False
    if _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {path}: {os.strerror(err)}")
    return True
