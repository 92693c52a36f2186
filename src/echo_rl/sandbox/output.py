"""Terminal output as an agent sees it: capped in memory while it streams in, then cleaned.

:class:`CappedOutput` keeps at most ``cap`` bytes of a command's output however much it prints (the
first half and the last half, so that both the start and the final error message survive);
:func:`clean_output` turns the kept bytes into text: invalid UTF-8 replaced, ANSI escape sequences
removed, carriage-return overwrites resolved the way a terminal shows them, other control bytes dropped.
"""

from __future__ import annotations

import re

_ANSI = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC … BEL / ST (window titles, hyperlinks)
    r"|\x1b[P^_][^\x1b]*\x1b\\"  # DCS / PM / APC strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI (colours, cursor movement)
    r"|\x1b[ -/]*[0-~]"  # two-byte escapes (charset selection, keypad modes)
    r"|\x1b"  # a stray ESC
)
# Control bytes a terminal would not print; TAB and LF stay, BEL, CR and ESC are handled separately.
_CONTROL_BYTES = bytes([*range(0x00, 0x07), 0x08, 0x0B, 0x0C, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])


class CappedOutput:
    """Collects a byte stream, keeping the first and the last ``cap // 2`` bytes once it exceeds ``cap``."""

    def __init__(self, cap: int):
        self.cap = cap
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - len(self._head) if not self._tail else 0
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        if not self._tail:  # first overflow: move the second half of the head into the tail
            half = self.cap // 2
            self._tail = self._head[half:]
            del self._head[half:]
        keep = self.cap - len(self._head)
        if len(data) >= keep:
            self._tail = bytearray(data[-keep:])
        else:
            self._tail += data
            if len(self._tail) > 2 * keep:  # trim rarely, not on every chunk
                del self._tail[:-keep]

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def getvalue(self) -> bytes:
        """The kept bytes, with a one-line notice where bytes were dropped."""
        if not self.truncated:
            return bytes(self._head)
        keep = self.cap - len(self._head)
        tail = self._tail[-keep:] if keep > 0 else b""
        omitted = self.total - len(self._head) - len(tail)
        return bytes(self._head) + f"\n[... {omitted} bytes of output omitted ...]\n".encode() + bytes(tail)


def _resolve_carriage_returns(line: str) -> str:
    if "\r" not in line:
        return line
    parts = line.split("\r")
    shown = ""
    for part in parts:  # a terminal overwrites from column 0: later text covers earlier text
        shown = part + shown[len(part) :]
    return shown


def clean_output(data: bytes) -> str:
    """Decode (invalid UTF-8 → U+FFFD), strip ANSI escapes and control bytes, resolve ``\\r`` overwrites."""
    text = data.translate(None, _CONTROL_BYTES).decode("utf-8", errors="replace")
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = text.replace("\x07", "")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        text = "\n".join(_resolve_carriage_returns(line) for line in text.split("\n"))
    return text
