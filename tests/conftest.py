"""Shared fixtures. Tests run the real components (bubblewrap, podman, tokenizers, transformers)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run ``echo-rl ARGS…`` as a real subprocess (what a user types); returns a :class:`CliResult`."""

    def invoke(*args: str, cwd: str | None = None, timeout: float = 600) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "echo_rl", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return invoke
