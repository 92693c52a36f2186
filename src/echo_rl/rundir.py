"""The run directory: one layout, defined here, used by everything that writes results.

    RUN/
      config.yaml          the full resolved config (every field), written when the run starts
      metrics.jsonl        one JSON object per step / evaluation (append-only)
      checkpoints/step-N/  model (safetensors), tokenizer, optimizer, scheduler, RNG, sampler state
      rollouts/            trajectories (jsonl), e.g. step-000012.jsonl, eval-*.jsonl
      eval/                one JSON result per evaluation, step-N.json (scores per split, mode, family)
      report/              report.md, report.html, *.png, summary.json
      logs/                free-form logs (e.g. events.log)

Every writer goes through :func:`atomic_write_text` / :func:`atomic_write_bytes`, so a crash never leaves
a half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from echo_rl.configfile import dump_config


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record, default=_json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a jsonl file, skipping a torn last line left by a crash."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (see module docstring)."""

    root: Path

    @classmethod
    def create(cls, root: str | Path) -> RunDir:
        run = cls(Path(root))
        for sub in (run.checkpoints, run.rollouts, run.evals, run.report, run.logs):
            sub.mkdir(parents=True, exist_ok=True)
        return run

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def rollouts(self) -> Path:
        return self.root / "rollouts"

    @property
    def evals(self) -> Path:
        return self.root / "eval"

    def eval_result(self, step: int) -> Path:
        return self.evals / f"step-{step:06d}.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def write_config(self, cfg: BaseModel) -> None:
        atomic_write_text(self.config, dump_config(cfg))

    def log_metrics(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics, record)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics)
