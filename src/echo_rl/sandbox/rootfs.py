"""Host-side file access to a sandbox's writable root directory, safe against the sandbox's symlinks.

The local sandbox's ``/`` is a host directory its user controls: a ``/home/user/x -> /etc/passwd``
symlink planted by the agent must not make a host-side upload write the host's ``/etc/passwd``. Every
path is therefore resolved with ``openat2(RESOLVE_IN_ROOT)`` (Linux ≥ 5.6): symlinks and ``..`` are
resolved as the sandbox sees them, never escaping the root; final components are created with
``O_NOFOLLOW | O_EXCL`` after removing whatever was there.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from pathlib import Path, PurePosixPath

_SYS_OPENAT2 = 437  # the same number on every Linux architecture
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _open_in_root(root_fd: int, path: str, flags: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_int(root_fd),
        ctypes.c_char_p(path.encode() or b"."),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


class RootFS:
    """Reads and writes files under ``root`` the way a process chrooted there would see them.

    Everything created is owned by ``uid``/``gid`` (None: the caller's), so the sandbox user can change
    and delete what the host uploaded.
    """

    def __init__(self, root: Path, uid: int | None = None, gid: int | None = None):
        self.root = root
        self._owner = (-1 if uid is None else uid, -1 if gid is None else gid)

    def read(self, path: str) -> bytes:
        """The content of file ``path`` (absolute, in sandbox terms)."""
        with _Fd(self._open(path, os.O_RDONLY)) as fd:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)

    def write(self, source: Path | bytes, dest: str) -> None:
        """Copy ``source`` (bytes, a host file or a host directory) to ``dest``, replacing what is there;
        missing parent directories are created. Set-uid/set-gid bits are dropped."""
        parts = PurePosixPath(dest).parts[1:]
        if not parts:
            raise ValueError("cannot replace the sandbox's root directory")
        with _Fd(self._makedirs(str(PurePosixPath(*parts[:-1])) if len(parts) > 1 else "")) as parent:
            self._copy(source, parent, parts[-1])

    def restore_top(self, name: str, link: str | None) -> None:
        """Make the top-level entry ``name`` the symlink ``link`` again, or (None) a real directory, whatever
        the sandbox put there instead (a directory of its own tools in place of the ``/bin`` link)."""
        with _Fd(os.open(self.root, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)) as root:
            try:
                st = os.stat(name, dir_fd=root, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode) and link is None:
                return
            if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=root) == link:
                return
            _remove(root, name)
            if link is None:
                os.mkdir(name, 0o755, dir_fd=root)
            else:
                os.symlink(link, name, dir_fd=root)
            os.chown(name, *self._owner, dir_fd=root, follow_symlinks=False)

    def remove(self, name: str) -> None:
        """Remove the top-level entry ``name``, whatever it is (nothing when missing)."""
        with _Fd(os.open(self.root, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)) as root:
            _remove(root, name)

    def _open(self, path: str, flags: int) -> int:
        with _Fd(os.open(self.root, os.O_DIRECTORY | os.O_PATH | os.O_CLOEXEC)) as root_fd:
            return _open_in_root(root_fd, path.lstrip("/"), flags)

    def _makedirs(self, path: str) -> int:
        try:
            return self._open(path, os.O_DIRECTORY)
        except FileNotFoundError:
            head, _, name = path.rpartition("/")
            with _Fd(self._makedirs(head)) as parent:
                os.mkdir(name, 0o755, dir_fd=parent)
                fd = os.open(name, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
                os.fchown(fd, *self._owner)
                return fd

    def _copy(self, source: Path | bytes, parent: int, name: str) -> None:
        if isinstance(source, Path) and source.is_dir() and not source.is_symlink():
            self._copy_dir(source, parent, name)
            return
        _remove(parent, name)
        if isinstance(source, Path) and source.is_symlink():
            os.symlink(os.readlink(source), name, dir_fd=parent)
            os.chown(name, *self._owner, dir_fd=parent, follow_symlinks=False)
            return
        data = source if isinstance(source, bytes) else source.read_bytes()
        mode = 0o644 if isinstance(source, bytes) else stat.S_IMODE(source.stat().st_mode) & ~0o6000
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with _Fd(os.open(name, flags, 0o600, dir_fd=parent)) as fd:
            os.fchown(fd, *self._owner)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

    def _copy_dir(self, source: Path, parent: int, name: str) -> None:
        try:
            fd = os.open(name, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError:  # missing, a file, or a symlink (ELOOP): replace it by a directory
            _remove(parent, name)
            os.mkdir(name, 0o755, dir_fd=parent)
            fd = os.open(name, os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        with _Fd(fd):
            os.fchown(fd, *self._owner)
            os.fchmod(fd, stat.S_IMODE(source.stat().st_mode) & ~0o6000)
            for child in source.iterdir():
                if child.is_symlink() or child.is_file() or child.is_dir():
                    self._copy(child, fd, child.name)


def _remove(parent: int, name: str) -> None:
    """Remove ``name`` in directory ``parent`` whatever it is, without following symlinks."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


class _Fd:
    """Closes a file descriptor on leaving a ``with`` block."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
