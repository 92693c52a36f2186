"""Start sandbox launchers from a small helper process rather than from echo-rl's own.

A ``LocalSandbox`` start spawns ``bwrap`` (or ``unshare``). Spawned from the trainer's process that costs the
trainer ~2 ms of its own time, under the GIL, per start — asyncio's subprocess set-up, a vfork of a
multi-GB address space, a waiter thread per child — and, as host root, the drop to ``nobody``: an extra
``setpriv`` exec (~1.7 ms here), or subprocess's ``user=``, which forks instead of vforking (~100 ms from a
process that holds a model, ~1.3 ms from a small one). The spawner is a ~10 MB stdlib-only Python process
(:mod:`.spawner_server`), started once per echo-rl process and already running as the sandboxes' host user
(``nobody`` when echo-rl runs as root), that vforks the launchers on request and reports when they end:

    spawner = Spawner.shared()
    pid = await spawner.spawn(argv, env, stdin=r, stdout=w, more=[info])   # FdArg(0) in argv: info's number
    status = await spawner.wait(pid)                                       # -9: killed by SIGKILL

The caller passes descriptors it made (pipes); the spawner's child inherits them. Where ``nobody`` cannot
run this Python (an interpreter under a private home), the server runs as root and drops each child to
``nobody`` itself. A reader thread of this process turns the server's replies into futures any event loop
can await. If the server dies, every pending call fails with :class:`SandboxError`, every waited process
reports :data:`UNKNOWN_STATUS`, and the next :meth:`Spawner.shared` starts a new server. The server exits
when this process closes its end of the socket, which the kernel does when this process dies; the launchers
die with the server (``--die-with-parent``, ``--pdeathsig``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from echo_rl.futures import settle
from echo_rl.sandbox.base import SandboxError

SERVER = Path(__file__).with_name("spawner_server.py")
UNKNOWN_STATUS = -1
NOBODY = 65534  # the host user sandboxes run as when echo-rl runs as root


@dataclass(frozen=True)
class FdArg:
    """An argv item standing for the child's number of descriptor ``more[index]``."""

    index: int


class Spawner:
    _shared: ClassVar[Spawner | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls) -> Spawner:
        """This process's spawner, started on first use (and again after its server died or a fork)."""
        with cls._shared_lock:
            current = cls._shared
            if current is None or not current.alive or current.owner_pid != os.getpid():
                cls._shared = current = cls()
            return current

    def __init__(self) -> None:
        self.owner_pid = os.getpid()
        self.server_pid: int | None = None
        self.alive = True
        self._drop_to: int | None = None  # set when the server runs as root and must drop each child
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._replies: dict[int, concurrent.futures.Future[int]] = {}
        self._exits: dict[int, concurrent.futures.Future[int]] = {}
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        # The reader thread starts the server and lives as long as this process: a child's parent-death
        # signal follows the thread that spawned it.
        threading.Thread(target=self._run, args=(started,), name="echo-rl-spawner", daemon=True).start()
        started.result()

    async def spawn(
        self,
        argv: Sequence[str | FdArg],
        env: dict[str, str],
        *,
        stdin: int,
        stdout: int,
        more: Sequence[int] = (),
    ) -> int:
        """Start ``argv`` (stdin/stdout/stderr on the given descriptors, ``more`` kept open, a new session,
        as the sandboxes' host user); its pid. Raises :class:`SandboxError` when it could not be started."""
        request_id = next(self._ids)
        reply: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._replies[request_id] = reply
        items = [{"fd": 2 + item.index} if isinstance(item, FdArg) else item for item in argv]
        message = json.dumps({"id": request_id, "argv": items, "env": env, "user": self._drop_to}).encode()
        try:
            with self._send_lock:
                assert self._sock is not None
                socket.send_fds(self._sock, [message], [stdin, stdout, *more])
        except OSError as err:
            self._replies.pop(request_id, None)
            raise SandboxError(f"the sandbox spawner is gone: {err}") from None
        return await asyncio.wrap_future(reply)

    async def wait(self, pid: int) -> int:
        """The exit status of spawned process ``pid`` once it has ended (negative: killed by that signal;
        :data:`UNKNOWN_STATUS` when the spawner died first)."""
        exit_future = self._exits.get(pid)
        if exit_future is None:
            return UNKNOWN_STATUS
        status = await asyncio.wrap_future(exit_future)
        self._exits.pop(pid, None)
        return status

    # -- the reader thread -------------------------------------------------------------------------------

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        try:
            server, self._sock = self._start_server()
            self.server_pid = server.pid
        except SandboxError as err:
            self.alive = False
            started.set_exception(err)
            return
        started.set_result(None)
        try:
            while message := self._sock.recv(1 << 16):
                self._dispatch(json.loads(message))
        except OSError:
            pass
        finally:
            self.alive = False
            self._sock.close()
            server.wait()
            gone = SandboxError("the sandbox spawner stopped")
            for future in [*self._replies.values()]:
                settle(future, gone)
            for future in [*self._exits.values()]:
                settle(future, UNKNOWN_STATUS)

    def _start_server(self) -> tuple[subprocess.Popen[bytes], socket.socket]:
        """The server process and this end of its socket, once the server said hello. As root, the server
        runs as ``nobody`` with the first interpreter ``nobody`` can run (the program goes in on stdin: no
        file of ours needs to be readable to it), else as root, dropping each child itself."""
        source = SERVER.read_bytes()
        as_root = os.geteuid() == 0
        candidates: list[tuple[str, int | None]] = [(sys.executable, None)]
        if as_root:
            pythons = dict.fromkeys([sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"])
            candidates = [(path, NOBODY) for path in pythons if os.path.exists(path)] + candidates
        failures = []
        for interpreter, user in candidates:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            as_user = {} if user is None else {"user": user, "group": user, "extra_groups": []}
            try:
                server = subprocess.Popen(
                    [interpreter, "-I", "-S", "-", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    **as_user,  # type: ignore[arg-type]
                )
                assert server.stdin is not None
                with server.stdin:  # the program, on stdin: python reads it to the end, then runs it
                    server.stdin.write(source)
            except OSError as err:
                failures.append(f"{interpreter}: {err}")
                ours.close()
                continue
            finally:
                theirs.close()
            if ours.recv(64) == b"hello":  # empty: it died (too old a Python, say)
                self._drop_to = NOBODY if as_root and user is None else None
                return server, ours
            failures.append(f"{interpreter}: exited with status {server.wait()}")
            ours.close()
        raise SandboxError("could not start the sandbox spawner: " + "; ".join(failures))

    def _dispatch(self, message: dict[str, object]) -> None:
        if "exit" in message:
            pid, status = int(message["exit"]), int(message["status"])  # type: ignore[call-overload]
            self._exits.setdefault(pid, concurrent.futures.Future())
            settle(self._exits[pid], status)
            return
        reply = self._replies.pop(int(message["id"]), None)  # type: ignore[call-overload]
        if reply is None:
            return
        if "error" in message:
            settle(reply, SandboxError(f"could not start the sandbox: {message['error']}"))
        else:
            pid = int(message["pid"])  # type: ignore[call-overload]
            self._exits.setdefault(pid, concurrent.futures.Future())
            settle(reply, pid)
