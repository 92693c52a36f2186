"""The sandbox spawner's server process (see :mod:`echo_rl.sandbox.spawner`). Standard library only: it runs
as ``python -I -S - FD`` (the program on stdin) and imports nothing of echo-rl, so that it stays ~10 MB and forks
its children in well under a millisecond.

On the SOCK_SEQPACKET socket FD, after a first packet ``hello``, one JSON object per packet:

    request  {"id": n, "argv": [...], "env": {...}, "user": uid or null} with descriptors [stdin, stdout,
             *more] attached; an argv item {"fd": i} stands for this process's number of descriptor i
    replies  {"id": n, "pid": p} or {"id": n, "error": "why"}; then {"exit": p, "status": s} once p has
             ended (s < 0: killed by signal -s)

The child gets the descriptors as stdin and stdout (stderr folded into stdout), keeps ``more`` open under
the numbers its argv names, starts a new session, and runs as ``user`` (group ``user``, no supplementary
groups) when one is given. The server exits when the other end of FD closes — echo-rl stopped or died.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys


def spawn(request: dict, fds: list[int]) -> dict:
    argv = [str(fds[item["fd"]]) if isinstance(item, dict) else item for item in request["argv"]]
    user = request.get("user")
    drop = {} if user is None else {"user": user, "group": user, "extra_groups": []}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=fds[0],
            stdout=fds[1],
            stderr=subprocess.STDOUT,
            pass_fds=fds[2:],
            start_new_session=True,
            env=request["env"],
            **drop,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as err:
        return {"id": request["id"], "error": f"{type(err).__name__}: {err}"}
    CHILDREN[proc.pid] = proc
    return {"id": request["id"], "pid": proc.pid}


def reap(sock: socket.socket) -> None:
    for pid, proc in list(CHILDREN.items()):
        status = proc.poll()
        if status is not None:
            del CHILDREN[pid]
            sock.send(json.dumps({"exit": pid, "status": status}).encode())


def serve(sock: socket.socket) -> None:
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up byte is written
    while True:
        ready = select.select([sock, wake_read], [], [])[0]
        if wake_read in ready:
            os.read(wake_read, 4096)
            reap(sock)
        if sock in ready:
            message, fds, _flags, _address = socket.recv_fds(sock, 1 << 20, 16)
            if not message:
                return
            try:
                reply = spawn(json.loads(message), fds)
            finally:
                for fd in fds:
                    os.close(fd)
            sock.send(json.dumps(reply).encode())
            reap(sock)  # a child that failed at once


CHILDREN: dict[int, subprocess.Popen] = {}

if __name__ == "__main__":
    with socket.socket(fileno=int(sys.argv[1])) as channel:
        try:
            channel.send(b"hello")
            serve(channel)
        except (BrokenPipeError, ConnectionResetError):
            pass
