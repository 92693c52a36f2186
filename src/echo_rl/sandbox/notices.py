"""Say once per process what a sandbox limit or task setting cannot do on this machine or backend.

    notice_once("local sandbox: no memory cap (cgroup v1: /sys/fs/cgroup/memory is not writable)")

Each distinct message is logged once, as a warning of the ``echo_rl.sandbox`` logger (printed on stderr
even where logging is not configured), when the first sandbox that it concerns starts.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("echo_rl.sandbox")
_said: set[str] = set()
_lock = threading.Lock()


def notice_once(message: str) -> None:
    """Log ``message`` as a warning unless this process already did."""
    with _lock:
        if message in _said:
            return
        _said.add(message)
    log.warning(message)
