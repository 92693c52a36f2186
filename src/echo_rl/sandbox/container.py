"""``ContainerSandbox``: one container per episode through the Docker Engine API (Docker or podman).

The container runs an init (``--init``: tini or catatonit, which reaps orphans and stops promptly) over
``sleep infinity``; the persistent shell is a ``bash`` started with ``exec`` whose stdin/stdout are the
attached exec socket, speaking the protocol of :mod:`echo_rl.sandbox.protocol` exactly as the local
backend does. Limits: ``cpus`` (CPU quota, 1 by default), ``memory_mb`` (cgroup memory), ``max_processes``
(cgroup pids), ``storage_mb`` (``storage_opt size``, where the engine's storage driver supports it —
overlay over xfs with project quotas; said once where not), plus the same per-process ``ulimit`` values
as the local backend; every capability dropped but ``cap_add`` (the minimum root in a task needs) and
``no-new-privileges``; network ``none`` unless allowed; the work dir is the config's ``workdir``. The
shell runs as the image's user (root for task images), as Harbor tasks expect.

Killing "every process" (a shell restart, :meth:`reset_processes`) kills the container's init, which
takes the whole pid namespace with it, and starts the same container again: its filesystem survives and
a fork bomb cannot prevent it. Containers carry the run's label and owner (:mod:`echo_rl.sandbox.owner`).

The verifier never runs in the agent's container (:meth:`ContainerSandbox.final_state`): that one is
frozen, and a fresh container from the same pristine image receives the agent's changed files outside
:data:`SYSTEM_DIRS`, so a replaced ``/bin/bash`` or ``/etc/ld.so.preload`` cannot reach test.sh.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import posixpath
import shutil
import socket
import ssl
import sys
import threading
import tarfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import docker
import docker.errors
from docker.models.containers import Container

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import RUNNER_FILES, SandboxError
from echo_rl.sandbox.engine import engine_client, engine_url, tls_config
from echo_rl.sandbox.notices import notice_once
from echo_rl.sandbox.owner import LABEL_KEY, OWNER_KEY, Owner, check_label
from echo_rl.sandbox.protocol import bootstrap, quote
from echo_rl.sandbox.shell import ShellSandbox, ShellStream

T = TypeVar("T")
_NO_STORAGE_LIMIT: set[str] = set()  # engines whose storage driver refused a size (see _create)
_SHELL_ENV = {"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat", "LANG": "C.UTF-8"}
_READ_LIMIT = 1 << 18
# Top-level directories whose changes never reach the verifier's container: the system's tools, libraries
# and configuration (a replaced /bin/bash, /etc/ld.so.preload), kernel file systems, and the verifier's own
# /tests and /logs, and the test runners' files in / (RUNNER_FILES). Everything else the agent changed (its
# work dir, /root, /tmp, /var, /opt…) is copied.
SYSTEM_DIRS = frozenset({"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "boot", "proc", "sys", "dev",
                         "run", "tests", "logs", *RUNNER_FILES})
_DELETED = 2  # the Kind of a removed path in the engine's changes list (0 modified, 1 added)
# bash -c KILLER TICKS SPARE: SIGKILL, in rounds until none is left, every process started at or after
# TICKS (1/100 s of uptime; 0: all) except init, init's first child (the keeper), this script and pid
# SPARE (the shell, or 0). Prints how many it killed, or "busy" when processes keep appearing.
_KILLER = r"""
t=$0 spare=$1 keeper= first= total=0
for d in /proc/[0-9]*; do
  read -r s < "$d/stat" 2>/dev/null || continue
  set -- ${s##*") "}
  if [ "$2" = 1 ] && { [ -z "$first" ] || [ "${20}" -lt "$first" ]; }; then keeper=${d#/proc/} first=${20}; fi
done
for round in 1 2 3 4 5 6 7 8; do
  n=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case " 1 $$ $spare $keeper " in *" $p "*) continue ;; esac
    read -r s < "$d/stat" 2>/dev/null || continue
    set -- ${s##*") "}
    if [ "$1" != Z ] && [ "${20}" -ge "$t" ]; then kill -9 "$p" 2>/dev/null && n=$((n + 1)); fi
  done
  [ "$n" = 0 ] && { echo "$total"; exit 0; }
  total=$((total + n))
  sleep 0.02 2>/dev/null  # let the killed exit before the next look
done
echo busy
"""


class _ExecStream(ShellStream):
    """The shell as an attached exec: a socket carrying the engine's multiplexed stream frames."""

    def __init__(self, client: docker.DockerClient, exec_id: str, sock: Any, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self._client, self._exec_id, self._sock = client, exec_id, sock
        self._reader, self._writer = reader, writer

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def read(self) -> bytes:
        try:
            while True:  # frames: 1 byte stream id, 3 zero bytes, 4 bytes big-endian length, payload
                header = await self._reader.readexactly(8)
                size = int.from_bytes(header[4:], "big")
                if size:
                    return await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""

    async def exit_status(self) -> int:
        for _ in range(50):
            info = await asyncio.to_thread(self._client.api.exec_inspect, self._exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return code if isinstance(code, int) else -1
            await asyncio.sleep(0.02)
        return -1

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class ContainerSandbox(ShellSandbox):
    """A container sandbox (see the module docstring).

    ``image`` defaults to ``config.base_image`` (build task images with
    :func:`~echo_rl.sandbox.engine.build_image`); ``allow_network`` overrides ``config.allow_network``;
    ``label`` names the run that owns the container.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        image: str | None = None,
        allow_network: bool | None = None,
        label: str = "echo-rl",
    ):
        super().__init__(config or SandboxConfig())
        self.image = image or self.config.base_image
        self.allow_network = self.config.allow_network if allow_network is None else allow_network
        self.label = check_label(label)
        self._client: docker.DockerClient | None = None
        self._container: Container | None = None
        self.storage_limited = False  # whether the engine took the storage size (set by start)
        self._frozen = False  # paused by final_state(): thawed and restarted before its next use

    @property
    def container_id(self) -> str | None:
        return None if self._container is None else self._container.id

    async def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking engine call in a thread; engine failures become :class:`SandboxError`."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except docker.errors.ImageNotFound as err:
            raise SandboxError(
                f"image {self.image} is not available: build it (build_image) or run scripts/setup-podman.sh"
            ) from err
        except (docker.errors.DockerException, OSError) as err:
            raise SandboxError(f"container engine: {err}") from err

    # ---- life cycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._container is not None:
            return
        if self._stopped:
            raise SandboxError("a stopped sandbox cannot be started again")
        self._client = await asyncio.to_thread(engine_client, self.config)
        self._container = await self._create(self._client)
        try:
            await self._call(self._container.start)
            await self._start_shell()
        except BaseException:
            await self.stop()
            raise

    def _create_args(self) -> dict[str, Any]:
        cfg = self.config
        args: dict[str, Any] = {
            "image": self.image,
            "entrypoint": ["sleep"],
            "command": ["infinity"],
            "init": True,
            "detach": True,
            "hostname": "sandbox",
            "working_dir": cfg.workdir,
            "labels": {LABEL_KEY: self.label, OWNER_KEY: Owner.current().tag()},
            "mem_limit": f"{cfg.memory_mb}m",
            "pids_limit": cfg.max_processes,
            "cap_drop": ["ALL"],
            "cap_add": list(cfg.cap_add),
        }
        if cfg.no_new_privileges:
            args["security_opt"] = ["no-new-privileges"]
        if cfg.cpus is not None:
            args["nano_cpus"] = int(cfg.cpus * 1e9)
        if not self.allow_network:
            args["network_mode"] = "none"
        return args

    async def _create(self, client: docker.DockerClient) -> Container:
        """Create the container, with a storage size unless this engine's driver refused one before: then
        without, said once."""
        args = self._create_args()
        url = engine_url(self.config.engine_url)
        if url not in _NO_STORAGE_LIMIT:
            try:
                container = await self._call(client.containers.create,
                                             storage_opt={"size": f"{self.config.storage_mb}m"}, **args)
                self.storage_limited = True
                return container
            except SandboxError as err:
                if "storage-opt" not in str(err) and "storage option" not in str(err):
                    raise
                _NO_STORAGE_LIMIT.add(url)
                notice_once(f"container sandbox: no storage limit (storage_mb), the engine's storage driver "
                            f"cannot size a container: {str(err).rsplit(': ', 1)[-1][:160]}")
        return await self._call(client.containers.create, **args)

    async def stop(self) -> None:
        self._stopped = True
        await self._close_shell()
        container, self._container = self._container, None
        if container is not None:
            try:
                await self._call(container.remove, force=True)
            except SandboxError as err:
                if not isinstance(err.__cause__, docker.errors.NotFound):
                    raise

    # ---- the shell -----------------------------------------------------------------------------------------

    async def _open_shell(self) -> ShellStream:
        assert self._client is not None and self._container is not None
        api = self._client.api
        exec_id = (
            await self._call(
                api.exec_create,
                self._container.id,
                ["bash", "--noprofile", "--norc"],
                stdin=True,
                workdir=self.config.workdir,
                environment=_SHELL_ENV,
            )
        )["Id"]
        sock = await self._call(api.exec_start, exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        if isinstance(raw, ssl.SSLSocket):  # a TLS engine: asyncio cannot take an SSL socket over
            raw = _plain_end(raw)
        reader, writer = await asyncio.open_connection(sock=raw, limit=_READ_LIMIT)
        return _ExecStream(self._client, exec_id, sock, reader, writer)

    async def _kill_inside(self, ticks: int, spare: int) -> int | None:
        """Run :data:`_KILLER` in the container; None when it could not finish (a fork bomb holding every
        pid makes ``exec`` itself fail)."""
        assert self._container is not None
        try:
            result = await self._call(self._container.exec_run, ["bash", "-c", _KILLER, str(ticks), str(spare)])
        except SandboxError:
            return None
        words = result.output.split()
        return int(words[-1]) if result.exit_code == 0 and words and words[-1].isdigit() else None

    async def _kill_started_since(self, ticks: int) -> int:
        return await self._kill_inside(ticks, self.shell_pid) or 0

    async def _kill_all_processes(self) -> None:
        """Kill everything from inside; if that cannot finish, kill the container's init (the whole pid
        namespace goes with it) and start the same container again."""
        container = self._container
        if self._frozen:
            await self._thaw()
            return
        if container is None or await self._kill_inside(0, 0) is not None:
            return
        await self._restart_container()

    async def _restart_container(self) -> None:
        """Kill the container's init (every process goes with the pid namespace) and start it again."""
        container = self._container
        assert container is not None
        try:
            await self._call(container.kill)
        except SandboxError as err:  # a container that already stopped cannot be killed: fine
            if not isinstance(err.__cause__, docker.errors.APIError):
                raise
        await self._call(container.wait)
        await self._call(container.start)

    # ---- verification ------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def final_state(self) -> AsyncIterator[ContainerSandbox]:
        """Freeze this container (``pause``: every process the agent left, a fork bomb included, stops at
        once and the files hold still), then yield a fresh container from the pristine image, without
        network, holding the agent's changes outside :data:`SYSTEM_DIRS`: changed paths copied as they are
        (FIFOs, links and modes included), removed ones removed. While the verifier runs, this container is
        left frozen: it is thawed and restarted (nothing the agent started survives; its files do) when it
        is used again, and :meth:`stop` just removes it. On leaving, the fresh container is removed."""
        async with self._lock:
            if self._container is None:
                raise SandboxError("the sandbox is not running (start() it first)")
            await self._close_shell()
            self._broken, self._fresh_shell_due = False, True
            await self._call(self._container.pause)
            self._frozen = True
        source = self._container
        twin = ContainerSandbox(self.config, image=self.image, allow_network=False, label=self.label)
        try:
            _, changes = await asyncio.gather(twin.start(), self._call(source.diff))
            copy, remove = final_paths(changes or [])
            if copy or remove:  # the pristine rm; the shell's cwd may go, every verifier command sets its own
                await twin.exec("rm -rf -- " + " ".join(quote(path) for path in copy + remove))
            assert twin._container is not None
            for path in copy:
                stream, _ = await self._call(source.get_archive, path)
                await twin._call(twin._container.put_archive, posixpath.dirname(path), stream)
            yield twin
        finally:
            await twin.stop()

    async def _thaw(self) -> None:
        """Unpause a container :meth:`final_state` froze and restart it (kills what the agent left)."""
        if self._frozen and self._container is not None:
            self._frozen = False
            await self._call(self._container.unpause)
            await self._restart_container()

    async def _start_shell(self) -> None:
        await self._thaw()
        await super()._start_shell()

    async def attach(self) -> int:
        if self._container is None:
            raise SandboxError("the sandbox is not running (start() it first)")
        url = engine_url(self.config.engine_url)
        cfg = self.config
        if tool := shutil.which("docker"):
            tls = [f"--{flag}={value}" for flag, value in (("tlscacert", cfg.tls_ca_cert), ("tlscert", cfg.tls_client_cert),
                                                          ("tlskey", cfg.tls_client_key)) if value]
            argv = [tool, "-H", url, *tls, *(["--tlsverify"] if cfg.tls_verify else []), "exec"]
        elif tool := shutil.which("podman"):
            if tls_config(cfg) is not None:
                raise SandboxError("an interactive shell on a TLS engine needs the docker command")
            argv = [tool, "--remote", "--url", url, "exec"]
        else:
            raise SandboxError("an interactive container shell needs the docker or podman command")
        for key, value in {**_SHELL_ENV, "TERM": "xterm"}.items():
            argv += ["-e", f"{key}={value}"]
        setup = bootstrap(self.config.workdir, self._limits(), fold_stderr=False)
        argv += ["-it" if sys.stdin.isatty() else "-i", self._container.id, "bash", "-c", setup + "exec bash -i"]
        proc = await asyncio.create_subprocess_exec(*argv)
        return await proc.wait()

    # ---- files -------------------------------------------------------------------------------------------

    async def upload(self, source: Path | bytes, dest: str) -> None:
        if not dest.startswith("/"):
            raise ValueError(f"upload destination must be absolute: {dest!r}")
        if self._container is None:
            raise SandboxError("the sandbox is not running (start() it first)")
        if isinstance(source, Path) and not source.exists():
            raise FileNotFoundError(source)
        archive = await asyncio.to_thread(_tar, source, dest.strip("/"))
        await self._call(self._container.put_archive, "/", archive)

    async def download(self, source: str) -> bytes:
        if not source.startswith("/"):
            raise ValueError(f"download source must be absolute: {source!r}")
        if self._container is None:
            raise SandboxError("the sandbox is not running (start() it first)")
        path = PurePosixPath(source)
        for _ in range(16):  # follow symlinks the way the container would
            try:
                stream, _stat = await self._call(self._container.get_archive, str(path))
                data = await asyncio.to_thread(lambda: b"".join(stream))
            except SandboxError as err:
                if isinstance(err.__cause__, docker.errors.NotFound):
                    raise FileNotFoundError(source) from None
                raise
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                member = archive.next()
                if member is None or member.isdir():
                    raise IsADirectoryError(source)
                if not member.issym():
                    handle = archive.extractfile(member)
                    return handle.read() if handle is not None else b""
                path = path.parent / member.linkname
        raise OSError(f"too many levels of symbolic links: {source}")


def _plain_end(secure: ssl.SSLSocket) -> socket.socket:
    """One end of a socket pair whose other end two threads relay to and from ``secure``; each side's end
    of stream is passed on, and the threads end with the stream."""
    ours, theirs = socket.socketpair()

    def relay(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    for source, sink in ((secure, theirs), (theirs, secure)):
        threading.Thread(target=relay, args=(source, sink), name="echo-rl-tls-relay", daemon=True).start()
    return ours


def final_paths(changes: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """From an engine's changes list (``{"Path", "Kind"}``), ``(paths to copy, paths to remove)``: outside
    :data:`SYSTEM_DIRS`, each changed path not below another one copied (a changed directory is copied
    whole, after removing the pristine one, so deletions inside it hold too), removed paths not below a
    copied one removed."""
    # Sorted by components, a path's descendants follow it directly: only the last one kept can cover it.
    entries = sorted((c["Path"].strip("/").split("/"), c["Kind"]) for c in changes if c.get("Path", "/").strip("/"))
    copy: list[str] = []
    remove: list[str] = []
    last: list[str] | None = None
    for parts, kind in entries:
        if parts[0] in SYSTEM_DIRS or (last is not None and parts[: len(last)] == last):
            continue
        last = parts
        (remove if kind == _DELETED else copy).append("/" + "/".join(parts))
    return copy, remove


def _tar(source: Path | bytes, name: str) -> bytes:
    """A tar of ``source`` named ``name`` (relative to ``/``), owned by root, set-uid bits dropped."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = int(info.mtime) or int(time.time())
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode &= ~0o6000
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        if isinstance(source, bytes):
            info = as_root(tarfile.TarInfo(name))
            info.size, info.mode = len(source), 0o644
            archive.addfile(info, io.BytesIO(source))
        else:
            archive.add(source, arcname=name, filter=as_root)
    return buffer.getvalue()
