"""``LocalSandbox``: a persistent bash in Linux namespaces (bubblewrap, or ``unshare`` without it).

Layout seen inside: the host's ``/usr``, ``/etc``, ``/opt`` and the ``/bin``-style links, read-only; a
private, writable ``/`` for everything else (``/home/user``, the work dir, ``/tmp``, ``/var/tmp``,
``/tests``, ``/logs``, any new top-level directory) backed by a host directory, so that the agent and
the verifier may ``rm -rf``/recreate ``/tests`` and ``/logs`` and :meth:`upload`/:meth:`download` are
plain (symlink-safe) host file operations; fresh ``/proc`` and a minimal ``/dev``; own user, pid, ipc
and uts namespaces, and a network namespace without interfaces unless the network is allowed. The shell
runs as ``user`` (uid 1000 inside), without capabilities; as host root the whole sandbox runs as host
uid ``nobody``. The launcher is started by this process's sandbox spawner (:mod:`echo_rl.sandbox.spawner`,
a small helper already running as that user) and dies with it, the spawner with this process; every
process of the sandbox dies with its pid namespace. The ``/bin``-style links live in the writable ``/``:
before verification (:meth:`LocalSandbox.final_state`) they are put back, so an agent that pointed
``/bin`` or ``/lib64`` at its own shell or loader cannot reach test.sh.

The host directory lives under :func:`~echo_rl.sandbox.owner.state_root` with a name carrying the run's
label and the owning process, so that :mod:`echo_rl.sandbox.gc` can remove it after a crash.

Limits: the per-process ``ulimit`` values of :mod:`~echo_rl.sandbox.protocol`, and where the machine
allows it a cgroup per sandbox (:mod:`~echo_rl.sandbox.cgroups`: ``memory_mb`` for the whole sandbox, no
swap, ``max_processes``, ``cpus``) and a state directory of at most ``storage_mb``
(:mod:`~echo_rl.sandbox.statefs`, as root). What does not hold here is said once, at the first start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

import echo_rl.sandbox.procs as procs
import echo_rl.sandbox.statefs as statefs
from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import RUNNER_FILES, SandboxError
from echo_rl.sandbox.cgroups import SandboxCgroup, probe
from echo_rl.sandbox.notices import notice_once
from echo_rl.sandbox.owner import Owner, check_label, state_root
from echo_rl.sandbox.protocol import bootstrap, quote
from echo_rl.sandbox.rootfs import RootFS
from echo_rl.sandbox.shell import ShellSandbox, ShellStream
from echo_rl.sandbox.spawner import NOBODY, FdArg, Spawner

SANDBOX_UID = 1000
_HOST_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt")
_WRITABLE_SKELETON = ("tmp", "var/tmp", "tests", "logs", "proc", "dev")
_STICKY = ("tmp", "var/tmp")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READ_CHUNK = 1 << 18
Launcher = Literal["auto", "bwrap", "unshare"]


class _PipeShell(ShellStream):
    """The shell as a process the spawner started: its stdin and (stderr-folded) stdout pipes."""

    def __init__(self, spawner: Spawner, pid: int) -> None:
        self.spawner, self.pid = spawner, pid
        self._reader = asyncio.StreamReader(limit=_READ_CHUNK)
        self._writer: asyncio.StreamWriter | None = None
        self._read_transport: asyncio.BaseTransport | None = None

    async def connect(self, stdin: int, stdout: int) -> None:
        """Take over the parent ends of the shell's pipes (closed by :meth:`close`)."""
        loop = asyncio.get_running_loop()
        self._read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(self._reader), os.fdopen(stdout, "rb", buffering=0)
        )
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(stdin, "wb", buffering=0)
        )
        self._writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def read(self) -> bytes:
        return await self._reader.read(_READ_CHUNK)

    async def exit_status(self) -> int:
        return await self.spawner.wait(self.pid)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._read_transport is not None:
            self._read_transport.close()


@functools.cache
def _host_layout() -> tuple[tuple[str, str | None], ...]:
    """``(name, symlink target or None for a directory)`` for each host top-level dir shown read-only."""
    layout = []
    for name in _HOST_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            layout.append((name, os.readlink(path)))
        elif path.is_dir():
            layout.append((name, None))
    return tuple(layout)


@functools.cache
def _account_files() -> tuple[bytes, bytes]:
    """The host's ``/etc/passwd`` and ``/etc/group`` with uid/gid 1000 renamed ``user``."""

    def rewrite(path: str, entry: str) -> bytes:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            lines = []
        kept = [line for line in lines if line.split(":")[2:3] != [str(SANDBOX_UID)]]
        return ("\n".join([*kept, entry]) + "\n").encode()

    return (
        rewrite("/etc/passwd", f"user:x:{SANDBOX_UID}:{SANDBOX_UID}:user:/home/user:/bin/bash"),
        rewrite("/etc/group", f"user:x:{SANDBOX_UID}:"),
    )


def find_launcher(preference: Launcher = "auto") -> str:
    """The namespace tool to use: ``bwrap`` when present, else ``unshare``; :class:`SandboxError` if none."""
    for name in ("bwrap", "unshare") if preference == "auto" else (preference,):
        if shutil.which(name):
            return name
    wanted = "bubblewrap (bwrap) or util-linux unshare" if preference == "auto" else preference
    raise SandboxError(f"the local sandbox needs {wanted}; install it (apt-get install bubblewrap)")


class LocalSandbox(ShellSandbox):
    """A sandbox on this machine, in namespaces (see the module docstring).

    ``allow_network`` overrides ``config.allow_network``; ``label`` names the run that owns it;
    ``launcher`` forces ``bwrap`` or ``unshare`` (default: bwrap when installed).
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        allow_network: bool | None = None,
        label: str = "echo-rl",
        launcher: Launcher = "auto",
    ):
        super().__init__(config or SandboxConfig())
        self.allow_network = self.config.allow_network if allow_network is None else allow_network
        self.label = check_label(label)
        self._launcher_choice: Launcher = launcher
        self.launcher = ""
        self.state_dir: Path | None = None
        self._shell_process: _PipeShell | None = None  # the launcher's process, while it runs
        self._info_fd, self._init_pid = -1, None  # see _namespace_init
        self._as_root = os.geteuid() == 0
        self.cgroup: SandboxCgroup | None = None

    @property
    def root(self) -> Path:
        """The host directory that is the sandbox's writable ``/``."""
        if self.state_dir is None:
            raise SandboxError("the sandbox is not started")
        return self.state_dir / "root"

    # ---- life cycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._stopped:
            raise SandboxError("a stopped sandbox cannot be started again")
        if self.state_dir is not None:
            return
        self.launcher = find_launcher(self._launcher_choice)
        self.state_dir = self._make_state_dir()
        try:
            self.cgroup = self._make_cgroup(self.state_dir.name)
            await self._start_shell()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._stopped = True
        await self._close_shell()
        await self._kill_all_processes()
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is not None:
            await asyncio.to_thread(cgroup.remove)
        if self.state_dir is not None:
            await asyncio.to_thread(remove_tree, self.state_dir)

    def _make_cgroup(self, name: str) -> SandboxCgroup | None:
        """The sandbox's cgroup, or None (said once) where this machine allows none."""
        cfg, reason = self.config, probe().reason
        if probe().available:
            try:
                return SandboxCgroup.create(name, memory_mb=cfg.memory_mb, max_processes=cfg.max_processes,
                                            cpus=cfg.cpus, owner=NOBODY if self._as_root else None)
            except OSError as err:
                reason = str(err)
        notice_once(f"local sandbox: no total memory cap, pids cap or CPU quota, only per-process ulimits ({reason})")
        return None

    def _make_state_dir(self) -> Path:
        """Create the host directory behind the sandbox's ``/`` (plain ``os`` calls, each entry chowned as it
        is made: pathlib and a recursive chown walk cost ~3 ms of a ~15 ms start)."""
        parent = state_root()
        parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        state = parent / Owner.current().dir_name(self.label, secrets.token_hex(6))
        owner = NOBODY if self._as_root else -1

        def made(path: str) -> None:
            if owner != -1:
                os.chown(path, owner, owner, follow_symlinks=False)

        def mkdir(path: str, mode: int = 0o755) -> None:
            os.mkdir(path, mode)
            os.chmod(path, mode)  # the umask does not apply to the sticky /tmp
            made(path)

        mkdir(str(state), 0o711)
        self._bound(state, owner)
        root = os.path.join(state, "root")
        mkdir(root)
        for name, target in _host_layout():
            if target is None:
                mkdir(os.path.join(root, name))
            else:
                os.symlink(target, os.path.join(root, name))
                made(os.path.join(root, name))
        wanted = {*_WRITABLE_SKELETON, "home/user", self.config.workdir.strip("/")} - {""}
        for name in sorted(wanted):  # parents sort before their children
            parts = name.split("/")
            for depth in range(1, len(parts) + 1):
                path = os.path.join(root, *parts[:depth])
                if not os.path.lexists(path):
                    mkdir(path, 0o1777 if "/".join(parts[:depth]) in _STICKY else 0o755)
        for name, data in zip(("passwd", "group"), _account_files()):
            path = os.path.join(state, name)
            with open(path, "xb") as handle:
                handle.write(data)
            made(path)
        return state

    def _bound(self, state: Path, owner: int) -> None:
        """Make ``state`` a tmpfs of ``storage_mb`` where this machine allows it (said once where not)."""
        reason = statefs.can_bound()
        if reason is None:
            try:
                statefs.mount_bounded(state, size_mb=self.config.storage_mb, owner=None if owner == -1 else owner)
                return
            except OSError as err:
                reason = f"the state directory's size is not bounded ({err})"
        notice_once(f"local sandbox: {reason}; only the per-file limit (max_file_size_mb) holds")

    # ---- the shell ---------------------------------------------------------------------------------------

    def _env(self, interactive: bool) -> dict[str, str]:
        return {
            "HOME": "/home/user",
            "USER": "user",
            "LOGNAME": "user",
            "SHELL": "/bin/bash",
            "PATH": _PATH,
            "LANG": "C.UTF-8",
            "TERM": os.environ.get("TERM", "xterm") if interactive else "dumb",
            "PAGER": "cat",
            "GIT_PAGER": "cat",
        }

    def _argv(self, command: list[str], interactive: bool = False) -> list[str]:
        assert self.state_dir is not None
        if self.launcher == "unshare":
            return self._unshare_argv(command)
        argv = ["bwrap", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox", "--die-with-parent"]
        if not self.allow_network:
            argv.append("--unshare-net")
        if not interactive:
            argv.append("--new-session")
        argv += ["--bind", str(self.root), "/"]
        for name, target in _host_layout():
            if target is None:
                argv += ["--ro-bind", f"/{name}", f"/{name}"]
        argv += ["--ro-bind", str(self.state_dir / "passwd"), "/etc/passwd"]
        argv += ["--ro-bind", str(self.state_dir / "group"), "/etc/group"]
        argv += ["--proc", "/proc", "--dev", "/dev", "--", *command]
        return argv

    def _unshare_argv(self, command: list[str]) -> list[str]:
        """``unshare`` does what bwrap would: mounts set up with the user namespace's capabilities, then a
        chroot, then every capability dropped before the shell runs."""
        assert self.state_dir is not None
        root = quote(str(self.root))
        mounts = [f"mount --rbind {root} {root}"]
        for name, target in _host_layout():
            if target is None:
                mounts.append(f"mount --rbind /{name} {root}/{name} && mount -o remount,bind,ro {root}/{name}")
        for name in ("passwd", "group"):
            mounts.append(f"mount --bind {quote(str(self.state_dir / name))} {root}/etc/{name}")
        mounts += [f"mount -t proc proc {root}/proc", f"mount --rbind /dev {root}/dev", "hostname sandbox"]
        drop = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        script = " && ".join(mounts) + f" && exec chroot {root} " + " ".join(map(quote, [*drop, "--", *command]))
        argv = ["setpriv", "--pdeathsig=KILL", "unshare", "--user", f"--map-user={SANDBOX_UID}"]
        argv += [f"--map-group={SANDBOX_UID}", "--keep-caps", "--mount", "--propagation=private"]
        argv += ["--pid", "--fork", "--kill-child", "--ipc", "--uts"]
        if not self.allow_network:
            argv.append("--net")
        return [*argv, "--", "/bin/sh", "-c", script]

    async def _open_shell(self) -> ShellStream:
        argv: list[str | FdArg] = [*self._argv(["bash", "--noprofile", "--norc"])]
        info_read, info_write = os.pipe() if self.launcher == "bwrap" else (-1, -1)
        if info_write != -1:  # bwrap writes {"child-pid": N} there: the host pid of the namespace's init
            argv[1:1] = ["--info-fd", FdArg(0)]
        argv[:0] = self._join_cgroup()
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        try:
            spawner = Spawner.shared()
            pid = await spawner.spawn(
                argv,
                self._env(interactive=False),
                stdin=stdin_read,
                stdout=stdout_write,
                more=[info_write] if info_write != -1 else [],
            )
        except BaseException:
            for fd in (stdin_write, stdout_read, info_read):
                if fd != -1:
                    os.close(fd)
            raise
        finally:
            for fd in (stdin_read, stdout_write, info_write):
                if fd != -1:
                    os.close(fd)
        shell = _PipeShell(spawner, pid)
        self._shell_process, self._info_fd, self._init_pid = shell, info_read, None
        await shell.connect(stdin_write, stdout_read)
        return shell

    def _join_cgroup(self) -> list[str]:
        """The argv prefix that puts the launcher (and so everything in the sandbox) in its cgroup."""
        return self.cgroup.join_argv() if self.cgroup is not None else []

    def _namespace_init(self) -> int | None:
        """Host pid of the sandbox's pid-namespace init (bwrap's ``--info-fd`` report), or None when unknown
        (the unshare launcher, or bwrap died before reporting)."""
        if self._info_fd != -1:
            fd, self._info_fd = self._info_fd, -1
            try:
                os.set_blocking(fd, False)
                report = os.read(fd, 4096)
            except OSError:
                report = b""
            finally:
                os.close(fd)
            found = re.search(rb'"child-pid":\s*(\d+)', report)
            self._init_pid = int(found[1]) if found else None
        return self._init_pid

    async def _kill_started_since(self, ticks: int) -> int:
        if self._shell_process is None:
            return 0
        inside = procs.descendants(self._shell_process.pid)
        shell = next((pid for pid in inside if procs.namespace_pid(pid) == self.shell_pid), None)
        keep = set(procs.ancestors(shell)) if shell is not None else set()
        pids = [pid for pid in inside if pid not in keep and (procs.start_ticks(pid) or 0) >= ticks]
        procs.kill(pids)
        await procs.wait_gone(pids, 1.0)
        return len(pids)

    async def _kill_all_processes(self) -> None:
        """SIGKILL the namespace's init when its pid is known: the kernel then kills every process of the
        pid namespace and reaps them all before the init is gone, so bwrap exiting means nothing is left
        (no scan of /proc, ~20 ms a call with a few hundred processes). Otherwise kill the whole tree."""
        init = self._namespace_init()
        shell, self._shell_process = self._shell_process, None
        if shell is None:
            return
        await shell.close()
        if init is not None:
            procs.kill([init])
            await shell.exit_status()
            return
        pids = procs.descendants(shell.pid)
        procs.kill([shell.pid, *pids])
        await shell.exit_status()
        await procs.wait_gone(pids)

    async def attach(self) -> int:
        if self._shell is None:
            raise SandboxError("the sandbox is not running (start() it first)")
        setup = bootstrap(self.config.workdir, self._limits(), fold_stderr=False)
        as_nobody: dict[str, object] = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if self._as_root else {}
        proc = await asyncio.create_subprocess_exec(
            *self._join_cgroup(),
            *self._argv(["bash", "-c", setup + "exec bash --norc -i"], interactive=True),
            env=self._env(interactive=True),
            **as_nobody,  # type: ignore[arg-type]
        )
        return await proc.wait()

    # ---- verification ------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def final_state(self) -> AsyncIterator[LocalSandbox]:
        """Kill every process (the pid namespace goes), then put back the host layout's links and mount
        points the agent may have replaced in its writable ``/`` (``/bin`` or ``/lib64`` pointing at its own
        shell or loader): the next shell runs the host's read-only ``/usr`` again; the agent's
        :data:`~echo_rl.sandbox.base.RUNNER_FILES` in ``/`` are removed. Yields this sandbox."""
        await self.reset_processes()
        fs = self._fs()
        for name, target in (*_host_layout(), *((top, None) for top in ("proc", "dev"))):
            await asyncio.to_thread(fs.restore_top, name, target)
        for name in RUNNER_FILES:
            await asyncio.to_thread(fs.remove, name)
        yield self

    # ---- files -------------------------------------------------------------------------------------------

    def _fs(self) -> RootFS:
        owner = NOBODY if self._as_root else None
        return RootFS(self.root, owner, owner)

    @staticmethod
    def _host_area(path: str) -> bool:
        """Whether ``path`` lies in a read-only host directory (``/usr``, ``/etc``, …)."""
        top = path.strip("/").split("/", 1)[0]
        return any(top == name for name, _ in _host_layout())

    async def upload(self, source: Path | bytes, dest: str) -> None:
        if not dest.startswith("/"):
            raise ValueError(f"upload destination must be absolute: {dest!r}")
        if self._host_area(dest) or dest.strip("/").split("/", 1)[0] in ("proc", "dev"):
            raise ValueError(f"{dest} is read-only in the local sandbox")
        if isinstance(source, Path) and not source.exists():
            raise FileNotFoundError(source)
        await asyncio.to_thread(self._fs().write, source, dest)

    async def download(self, source: str) -> bytes:
        if not source.startswith("/"):
            raise ValueError(f"download source must be absolute: {source!r}")
        if self._host_area(source):
            return await asyncio.to_thread(Path(source).read_bytes)
        return await asyncio.to_thread(self._fs().read, source)


def remove_tree(path: Path) -> None:
    """Delete a sandbox directory (unmounting it first when it is a bounded one), also where the sandbox
    user took the owner's permissions away."""

    def retry(func: Callable[[str], object], failed: str, _exc: object) -> None:
        if not os.path.lexists(failed):
            return
        os.chmod(os.path.dirname(failed), stat.S_IRWXU)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, stat.S_IRWXU)
            shutil.rmtree(failed, onerror=retry)
        else:
            func(failed)

    if statefs.release(path):  # a bounded state directory: its content went with the unmount
        path.rmdir()
    elif path.exists():
        shutil.rmtree(path, onerror=retry)
