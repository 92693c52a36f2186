"""Read and write Harbor task folders (method §5).

    task = load_task("tasks/csv-lookup-3")          # UserError naming file and field if malformed
    report = load_task_dir("tasks/")                # every good task, and one line per bad one
    write_task(task, "out/csv-lookup-3")            # load_task(write_task(t)) == t

``task.toml`` keeps every key, known or not; known keys are type-checked. ``schema_version`` (Harbor ≥ 1.1)
and ``version`` (1.0) are both accepted. Symlinks are followed only when they stay inside the folder.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from echo_rl.errors import UserError
from echo_rl.tasks.task import Task

_TABLES = ("task", "metadata", "verifier", "agent", "environment", "solution")
_POSITIVE = "a positive number"
_USER = "a user name or uid"
_ENV = "a table of strings keyed by variable names"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# (table, key) -> kind of value expected; tables are checked to be tables.
_FIELDS: dict[tuple[str, str], str] = {
    ("", "schema_version"): "a string",
    ("", "version"): "a string",
    ("task", "name"): "a string",
    ("task", "description"): "a string",
    ("verifier", "timeout_sec"): _POSITIVE,
    ("verifier", "env"): _ENV,
    ("verifier", "user"): _USER,
    ("agent", "timeout_sec"): _POSITIVE,
    ("environment", "build_timeout_sec"): _POSITIVE,
    ("environment", "docker_image"): "a string",
    ("environment", "cpus"): _POSITIVE,
    ("environment", "memory_mb"): _POSITIVE,
    ("environment", "storage_mb"): _POSITIVE,
    ("environment", "allow_internet"): "a boolean",
    ("environment", "workdir"): "a string",
    ("solution", "env"): _ENV,
}


def _is(kind: str, value: Any) -> bool:
    if kind == "a string":
        return isinstance(value, str)
    if kind == "a boolean":
        return isinstance(value, bool)
    if kind == _POSITIVE:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if kind == _USER:
        return (isinstance(value, str) and bool(value.strip())) or (isinstance(value, int) and not isinstance(value, bool)
                                                                    and value >= 0)
    return isinstance(value, dict) and all(isinstance(v, str) and _VARIABLE.match(k) for k, v in value.items())


def validate_config(config: dict[str, Any], where: str) -> None:
    """Type-check the keys echo-rl reads; unknown keys pass. Raises a one-line :class:`UserError`."""
    for table in _TABLES:
        if table in config and not isinstance(config[table], dict):
            raise UserError(f"{table}: expected a table, got {type(config[table]).__name__}", where=where)
    for (table, key), kind in _FIELDS.items():
        holder = config.get(table, {}) if table else config
        if key in holder and not _is(kind, holder[key]):
            name = f"{table}.{key}" if table else key
            raise UserError(f"{name}: expected {kind}, got {holder[key]!r}", where=where)


def _read_files(root: Path) -> tuple[dict[str, bytes], frozenset[str]]:
    files: dict[str, bytes] = {}
    executables: set[str] = set()
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                raise UserError(f"{rel}: path escapes the task folder", where=str(root))
            if path.is_dir() or rel in ("task.toml", "instruction.md"):
                continue
            if not path.is_file():
                raise UserError(f"{rel}: not a regular file", where=str(root))
            files[rel] = path.read_bytes()
            if os.access(path, os.X_OK):
                executables.add(rel)
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
    return files, frozenset(executables)


def load_task(folder: str | Path) -> Task:
    """Load one Harbor task folder. Raises :class:`UserError` (one line, file and field) if malformed:
    missing ``task.toml``/``instruction.md``, bad TOML, wrong types, an escaping link, a docker-compose
    environment (``environment/docker-compose.yaml`` or ``compose.yaml``). ``tests/test.sh`` is optional: a
    task without it has no verifier (:attr:`Task.has_tests`)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError("not a task folder", where=str(root))
    toml_path, instruction_path = root / "task.toml", root / "instruction.md"
    for path in (toml_path, instruction_path):
        if not path.is_file():
            raise UserError("missing", where=str(path))
        if not path.resolve().is_relative_to(root.resolve()):
            raise UserError("path escapes the task folder", where=str(path))
    try:
        config = tomllib.loads(toml_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"invalid TOML ({err})", where=str(toml_path)) from None
    validate_config(config, str(toml_path))
    try:
        instruction = instruction_path.read_text()
    except UnicodeDecodeError:
        raise UserError("not valid UTF-8", where=str(instruction_path)) from None
    if not instruction.strip():
        raise UserError("empty instruction", where=str(instruction_path))
    files, executables = _read_files(root)
    task = Task(root.name, instruction, config, files, executables, source=str(root))
    if task.compose_file is not None:
        raise UserError("a docker-compose environment (several services) is not supported by echo-rl; "
                        "give the task one environment/Dockerfile or [environment] docker_image",
                        where=str(root / task.compose_file))
    return task


@dataclass
class LoadReport:
    """The tasks of a directory that loaded, and one error line per folder that did not."""

    tasks: list[Task] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def is_task_folder(path: Path) -> bool:
    """A folder with a ``task.toml`` or an ``instruction.md`` is (meant to be) one task."""
    return (path / "task.toml").is_file() or (path / "instruction.md").is_file()


def _marked_folders(root: Path) -> list[Path]:
    """The folders below ``root`` that hold a ``task.toml`` or an ``instruction.md``, sorted by path. Linked
    folders are followed (a directory of links to tasks kept elsewhere), each real folder once."""
    found, seen = [], set()
    for here, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()  # the first of two links to one folder, by name, is the one kept
        if (real := os.path.realpath(here)) in seen:
            dirs.clear()  # a link back up the tree, or a second link to the same folder
            continue
        seen.add(real)
        if "task.toml" in files or "instruction.md" in files:
            found.append(Path(here))
    return sorted(found)


def load_task_dir(root: str | Path) -> LoadReport:
    """Load ``root`` itself if it is a task folder, else every task folder below it (sorted by path).
    Bad folders are reported in :attr:`LoadReport.errors`, never raised."""
    root = Path(root)
    if not root.is_dir():
        raise UserError("no such directory", where=str(root))
    report = LoadReport()
    folders: list[Path] = []
    found = [root] if is_task_folder(root) else _marked_folders(root)
    for folder in found:  # sorted by parts: a task's sub-folders follow it and are part of it
        if not (folders and folder.is_relative_to(folders[-1])):
            folders.append(folder)
    for folder in folders:
        try:
            report.tasks.append(load_task(folder))
        except UserError as err:
            report.errors.append(str(err))
    return report


def write_task(task: Task, folder: str | Path) -> Path:
    """Write ``task`` as a Harbor folder at ``folder`` (created; existing files are overwritten)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / "task.toml").write_text(tomli_w.dumps(task.config))
    (root / "instruction.md").write_text(task.instruction)
    for rel, data in task.files.items():
        path = root / rel
        if not path.resolve().is_relative_to(root.resolve()):
            raise UserError(f"{rel}: path escapes the task folder", where=str(root))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if rel in task.executables else 0o644)
    return root
