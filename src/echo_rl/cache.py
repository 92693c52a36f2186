"""Directories built once and reused, keyed by what determines their content.

    key = "replays-" + fingerprint(cfg.tasks.model_dump(mode="json"), "replays-v1")
    value, info, reused = cached_pickle(cache / key, build)     # build() -> (value, info)
    saved = keyed_record(run / "final.json", key)                 # a JSON result, if computed from ``key``

A cache directory is complete when its ``DONE`` file exists (written last), so an interrupted build is
rebuilt from scratch rather than read half-written.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from echo_rl.rundir import atomic_write_text


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (cache keys): the first 12 hex digits of the SHA-256
    of their JSON with sorted keys."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def is_complete(root: Path) -> bool:
    return (root / "DONE").is_file()


def start_fresh(root: Path) -> None:
    """Empty ``root`` (whatever an interrupted build left) and create it."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)


def mark_complete(root: Path) -> None:
    atomic_write_text(root / "DONE", "")


def cached_pickle(root: Path, build: Callable[[], tuple[Any, dict[str, Any]]]) -> tuple[Any, dict[str, Any], bool]:
    """(value, info, reused): ``root/replays.pkl`` and ``root/replays.json`` when ``root`` is complete, else
    ``build()``'s, written there first (``info`` must be JSON-serialisable)."""
    if is_complete(root):
        info = json.loads((root / "replays.json").read_text())
        with (root / "replays.pkl").open("rb") as handle:
            return pickle.load(handle), info, True
    start_fresh(root)
    value, info = build()
    with (root / "replays.pkl").open("wb") as handle:
        pickle.dump(value, handle)
    atomic_write_text(root / "replays.json", json.dumps(info))
    mark_complete(root)
    return value, info, False


def keyed_record(path: Path, key: str) -> dict[str, Any] | None:
    """The JSON record at ``path`` when it exists and carries ``"key": key`` (what it was computed from)."""
    saved = json.loads(path.read_text()) if path.is_file() else {}
    return saved if saved.get("key") == key else None
