"""The wire protocol between the host and ONE persistent bash reading its commands from a stream.

Both backends run ``bash --noprofile --norc`` with a byte stream on its stdin and its stdout (stderr is
folded into stdout by the bootstrap, so both arrive interleaved in order). For each command the host
writes one logical line::

    builtin read -r __echo_up __echo_x </proc/uptime
    builtin printf '\\036<nonce>b%s\\037' "$__echo_up"          # begin marker: in-sandbox uptime
    builtin eval '<command>' </dev/null                        # the command, in the shell itself
    builtin printf '\\036<nonce>e%d\\037' "$?"                  # end marker: exit status

``eval`` at top level keeps ``cd``, ``export``, functions and ``declare`` state; the command's stdin is
``/dev/null`` so a command that reads stdin cannot swallow the protocol. The nonce is fresh for every
command and never stored in the shell, so a command cannot forge its own end marker. The begin marker
carries the sandbox's clock (``/proc/uptime``, in clock ticks of 1/100 s), which lets a backend kill
exactly the processes a timed-out command started: those whose start time is not earlier.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

_MARK_OPEN = b"\x1e"
_MARK_CLOSE = b"\x1f"
_MAX_MARK = 64
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def quote(text: str) -> str:
    """Single-quote ``text`` for bash (NUL bytes, which bash cannot hold, are dropped)."""
    return "'" + text.replace("\0", "").replace("'", "'\\''") + "'"


def bootstrap(workdir: str, limits: dict[str, int], *, fold_stderr: bool = True) -> str:
    """Shell set-up run once per shell: stderr into stdout, resource limits, working directory.

    ``limits`` maps ``ulimit`` flags (``u`` processes, ``v`` KiB of address space, ``f`` KiB per file,
    ``t`` CPU seconds) to values; a limit the kernel refuses is skipped.
    """
    lines = ["exec 2>&1"] if fold_stderr else []
    for flag, value in limits.items():
        lines.append(f"ulimit -S -H -{flag} {value} 2>/dev/null || ulimit -S -{flag} {value} 2>/dev/null")
    lines.append(f"builtin cd -- {quote(workdir)} 2>/dev/null || builtin cd /")
    return "\n".join(lines) + "\n"


@dataclass
class Wire:
    """One command as written to the shell, with the nonce that identifies its markers."""

    data: bytes
    nonce: bytes


def encode(command: str, cwd: str | None = None, env: dict[str, str] | None = None) -> Wire:
    """The bytes that make the shell run ``command``; ``cwd``/``env`` apply to it alone (a subshell)."""
    nonce = secrets.token_hex(8)
    body = f"builtin eval {quote(command)}"
    if cwd is not None or env:
        steps = [f"builtin cd -- {quote(cwd)}"] if cwd is not None else []
        for key, value in (env or {}).items():
            if not _IDENT.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
            steps.append(f"export {key}={quote(value)}")
        body = "( " + " && ".join([*steps, body]) + " )"
    line = (
        "builtin read -r __echo_up __echo_x </proc/uptime; "
        f"builtin printf '\\036{nonce}b%s\\037' \"$__echo_up\"; "
        f"{body} </dev/null; "
        f"builtin printf '\\036{nonce}e%d\\037' \"$?\"\n"
    )
    return Wire(line.encode("utf-8", errors="replace"), nonce.encode())


def uptime_ticks(value: bytes) -> int:
    """``/proc/uptime`` seconds (``"123.45"``) as clock ticks of 1/100 s."""
    whole, _, frac = value.decode().partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


class MarkerScanner:
    """Splits the shell's output stream into command output and the markers of one nonce.

    ``feed`` returns the output bytes that are certainly not part of a marker; ``begin`` (clock ticks)
    and ``end`` (exit status) are set once their markers arrive. Anything after the end marker is kept
    as ``rest`` (output of background jobs, shown with the next command).
    """

    def __init__(self, nonce: bytes):
        self._prefix = _MARK_OPEN + nonce
        self._pending = b""
        self.begin: int | None = None
        self.end: int | None = None
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        if self.end is not None:
            self.rest += data
            return b""
        buf = self._pending + data
        out = []
        while True:
            at = buf.find(self._prefix)
            if at < 0:
                keep = _partial_suffix(buf, self._prefix)
                out.append(buf[: len(buf) - keep])
                self._pending = buf[len(buf) - keep :]
                break
            close = buf.find(_MARK_CLOSE, at, at + _MAX_MARK)
            if close < 0:
                if len(buf) - at < _MAX_MARK:  # marker still arriving
                    out.append(buf[:at])
                    self._pending = buf[at:]
                    break
                out.append(buf[: at + 1])  # not a marker after all
                buf = buf[at + 1 :]
                continue
            out.append(buf[:at])
            self._marker(buf[at + len(self._prefix) : close])
            buf = buf[close + 1 :]
            if self.end is not None:
                self.rest, self._pending = buf, b""
                break
        return b"".join(out)

    def flush(self) -> bytes:
        """Bytes held back as a possible marker start (the stream ended or the command was abandoned)."""
        pending, self._pending = self._pending, b""
        return pending

    def _marker(self, body: bytes) -> None:
        kind, value = body[:1], body[1:]
        if kind == b"b":
            self.begin = uptime_ticks(value)
        elif kind == b"e":
            self.end = int(value)


def _partial_suffix(buf: bytes, prefix: bytes) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``prefix``."""
    start = buf.rfind(_MARK_OPEN, max(0, len(buf) - len(prefix) + 1))
    if start < 0 or not prefix.startswith(buf[start:]):
        return 0
    return len(buf) - start
