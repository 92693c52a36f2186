"""The pieces of the shell protocol on their own: marker scanning across chunk boundaries, output capping
and cleaning, command encoding."""

from __future__ import annotations

import pytest

from echo_rl.sandbox.output import CappedOutput, clean_output
from echo_rl.sandbox.protocol import MarkerScanner, encode, quote, uptime_ticks


def _stream(nonce: bytes, output: bytes, code: int) -> bytes:
    return b"\x1e" + nonce + b"b1234.56\x1f" + output + b"\x1e" + nonce + b"e%d\x1f" % code + b"after"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_scanner_finds_markers_split_anywhere(chunk):
    nonce = b"0123456789abcdef"
    data = _stream(nonce, b"out \x1e not a marker \x1e0123 partial\n", 3)
    scanner, out = MarkerScanner(nonce), b""
    for i in range(0, len(data), chunk):
        out += scanner.feed(data[i : i + chunk])
    assert out == b"out \x1e not a marker \x1e0123 partial\n"
    assert scanner.begin == 123456 and scanner.end == 3 and scanner.rest == b"after"


def test_scanner_ignores_markers_of_another_nonce():
    scanner = MarkerScanner(b"aaaaaaaaaaaaaaaa")
    out = scanner.feed(b"x\x1ebbbbbbbbbbbbbbbbe0\x1fy")
    assert scanner.end is None and out + scanner.flush() == b"x\x1ebbbbbbbbbbbbbbbbe0\x1fy"


def test_uptime_ticks():
    assert uptime_ticks(b"12.3") == 1230 and uptime_ticks(b"7") == 700 and uptime_ticks(b"0.05") == 5


def test_capped_output_keeps_head_and_tail():
    capped = CappedOutput(10)
    for piece in (b"0123", b"4567", b"89ab", b"cdef"):
        capped.add(piece)
    assert capped.truncated and capped.total == 16
    value = capped.getvalue()
    assert value.startswith(b"01234") and value.endswith(b"bcdef") and b"6 bytes of output omitted" in value


def test_capped_output_memory_stays_bounded():
    capped = CappedOutput(1000)
    for _ in range(10_000):
        capped.add(b"y\n" * 500)
    assert len(capped.getvalue()) < 1100 and capped.total == 10_000_000


def test_clean_output():
    assert clean_output(b"\x1b[1;32mok\x1b[0m\r\n") == "ok\n"
    assert clean_output(b"50%\r100%\n") == "100%\n"
    assert clean_output(b"abc\rX\n") == "Xbc\n"
    assert clean_output(b"\x1b]0;window title\x07shown\x1b[K\x1b(B\n") == "shown\n"
    assert clean_output(b"bad \xff\xfe utf8\x00\x07") == "bad \ufffd\ufffd utf8"
    assert clean_output("é ✓".encode()) == "é ✓"


def test_quote_and_encode():
    assert quote("it's") == "'it'\\''s'"
    wire = encode("echo hi", cwd="/tmp", env={"A": "1"})
    assert wire.nonce in wire.data and b"export A='1'" in wire.data and wire.data.endswith(b"\n")
    assert encode("x").nonce != encode("x").nonce
    with pytest.raises(ValueError):
        encode("true", env={"1X": "v"})
