"""The task model: one Harbor task held in memory.

A :class:`Task` is a Harbor task folder (method §5) as data: the instruction, every key of ``task.toml``
(unknown ones included, so a round trip is lossless) and every other file of the folder by its relative
POSIX path (``environment/Dockerfile``, ``tests/test.sh``, ``solution/solve.sh``, anything else). A task
without ``tests/test.sh`` has no verifier (:attr:`Task.has_tests`): verifier-free adaptation trains on it.

echo-rl conventions on top of Harbor, both optional:

- ``environment/setup.sh`` builds the initial state. The local backend runs it in the sandbox's workdir;
  the task's Dockerfile copies and runs the same script, so both backends start from the same state.
- ``solution/solve.sh`` may split the reference solution into agent turns with marker lines
  (``# echo-rl: turn``); :attr:`Task.reference_commands` returns one command per turn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

SETUP_SCRIPT = "environment/setup.sh"
DOCKERFILE = "environment/Dockerfile"
TEST_SCRIPT = "tests/test.sh"
SOLUTION_SCRIPT = "solution/solve.sh"
TURN_MARKER = "# echo-rl: turn"
# Harbor runs a task with one of these as a docker-compose project (several services): echo-rl does not.
COMPOSE_FILES = tuple(f"environment/{name}.{ext}" for name in ("docker-compose", "compose") for ext in ("yaml", "yml"))
RESOURCE_KEYS = ("cpus", "memory_mb", "storage_mb")


@dataclass
class Task:
    """A Harbor task. ``files`` maps relative POSIX paths (never ``task.toml``/``instruction.md``) to
    bytes; ``executables`` names the files with an executable bit. ``source`` (where it was loaded from)
    is informational and not part of equality."""

    name: str
    instruction: str
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    executables: frozenset[str] = frozenset()
    source: str | None = field(default=None, compare=False)

    def _table(self, name: str) -> dict[str, Any]:
        table = self.config.get(name)
        return table if isinstance(table, dict) else {}

    def subtree(self, folder: str) -> dict[str, bytes]:
        """The files under ``folder/`` keyed by their path relative to it."""
        prefix = folder.rstrip("/") + "/"
        return {path[len(prefix) :]: data for path, data in self.files.items() if path.startswith(prefix)}

    @property
    def metadata(self) -> dict[str, Any]:
        return self._table("metadata")

    @property
    def family(self) -> str | None:
        return self.metadata.get("family")

    @property
    def domain(self) -> str | None:
        return self.metadata.get("domain")

    @property
    def difficulty(self) -> str | None:
        return self.metadata.get("difficulty")

    @property
    def verifier_timeout_s(self) -> float | None:
        return self._table("verifier").get("timeout_sec")

    @property
    def agent_timeout_s(self) -> float | None:
        return self._table("agent").get("timeout_sec")

    @property
    def build_timeout_s(self) -> float | None:
        return self._table("environment").get("build_timeout_sec")

    @property
    def docker_image(self) -> str | None:
        """``[environment] docker_image``: a prebuilt image the task runs in as is (its Dockerfile unused)."""
        return self._table("environment").get("docker_image")

    @property
    def resources(self) -> dict[str, float]:
        """The ``[environment]`` resource limits the task sets (``cpus``, ``memory_mb``, ``storage_mb``)."""
        table = self._table("environment")
        return {key: table[key] for key in RESOURCE_KEYS if key in table}

    @property
    def verifier_user(self) -> str | int | None:
        """``[verifier] user``: who runs ``test.sh`` (None: the image's user)."""
        return self._table("verifier").get("user")

    @property
    def verifier_env(self) -> dict[str, str]:
        """``[verifier] env`` as written (``${VAR}`` / ``${VAR:-default}`` templates unresolved)."""
        return dict(self._table("verifier").get("env") or {})

    @property
    def solution_env(self) -> dict[str, str]:
        """``[solution] env`` as written (templates unresolved)."""
        return dict(self._table("solution").get("env") or {})

    @property
    def compose_file(self) -> str | None:
        """The docker-compose file of the task's environment, if it has one."""
        return next((path for path in COMPOSE_FILES if path in self.files), None)

    @property
    def allow_internet(self) -> bool:
        return bool(self._table("environment").get("allow_internet", False))

    @property
    def workdir(self) -> str | None:
        """``[environment] workdir``, else the Dockerfile's last absolute ``WORKDIR``, else None (the
        sandbox's default)."""
        configured = self._table("environment").get("workdir")
        if configured:
            return configured
        dockerfile = self.files.get(DOCKERFILE, b"").decode(errors="replace").splitlines()
        dirs = [line.split(None, 1)[1].strip() for line in dockerfile if line.upper().startswith("WORKDIR ")]
        return dirs[-1] if dirs and dirs[-1].startswith("/") else None

    @property
    def has_tests(self) -> bool:
        """True when the task has a verifier (``tests/test.sh``); a task without one can only be trained on
        verifier-free (``objective.algorithm=env_only``) and is never scored."""
        return TEST_SCRIPT in self.files

    @property
    def setup_script(self) -> str | None:
        data = self.files.get(SETUP_SCRIPT)
        return None if data is None else data.decode()

    @property
    def reference_commands(self) -> list[str] | None:
        """The reference solution as one command per turn, when ``solve.sh`` carries turn markers."""
        data = self.files.get(SOLUTION_SCRIPT)
        if data is None:
            return None
        blocks = data.decode(errors="replace").split(TURN_MARKER + "\n")
        if len(blocks) < 2:
            return None
        return [block.rstrip("\n") for block in blocks[1:]]

    def fingerprint(self) -> str:
        """A content hash of everything that defines the task (not its name)."""
        digest = hashlib.sha256(self.instruction.encode())
        digest.update(repr(sorted(self.config.items(), key=lambda kv: kv[0])).encode())
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path] + b"\0")
        return digest.hexdigest()[:16]


def solve_script(commands: list[str], workdir: str) -> str:
    """``solution/solve.sh`` for a reference solution given as one command per turn (parsed back by
    :attr:`Task.reference_commands`)."""
    lines = ["#!/bin/bash", "# Reference solution, one command per agent turn.", f"cd {workdir}"]
    for command in commands:
        lines += [TURN_MARKER, command]
    return "\n".join(lines) + "\n"
