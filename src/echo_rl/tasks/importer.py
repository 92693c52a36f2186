"""Import Harbor tasks from a directory of task folders or from the OpenThoughts parquet layout.

    summary = import_tasks("downloads/ot-rl.parquet", "tasks/ot")   # or a directory of task folders

OpenThoughts-Agent ships tasks as parquet rows whose ``task_binary`` column holds a (gzipped) tar of one
Harbor task folder, and usually a ``path`` column naming it. Archives are extracted safely: a member
with an absolute path, a ``..`` component, a link pointing outside the task, or a device/FIFO rejects the
whole task with a reason; nothing from it is written. Every task, imported or rejected, is reported.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from echo_rl.errors import UserError
from echo_rl.tasks.corpus import index_row, write_index
from echo_rl.tasks.harbor import load_task, load_task_dir, write_task
from echo_rl.tasks.task import Task

BINARY_COLUMN = "task_binary"
NAME_COLUMNS = ("path", "task_id", "name")


@dataclass
class ImportSummary:
    imported: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be extracted, or None."""
    name = member.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"absolute path {name!r}"
    if ".." in Path(name).parts:
        return f"'..' in {name!r}"
    if member.issym() or member.islnk():
        base = posixpath.dirname(name) if member.issym() else ""
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            return f"link {name!r} points outside the task ({member.linkname!r})"
    elif not (member.isfile() or member.isdir()):
        return f"{name!r} is not a regular file, directory or link"
    return None


def extract_task_tar(data: bytes, dest: Path) -> Path:
    """Extract a tar (any compression) of one Harbor task under ``dest`` and return the task folder (the
    shallowest directory holding ``task.toml``). Raises :class:`UserError` for an unsafe or bad archive."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive.getmembers():
                why = _unsafe(member)
                if why:
                    raise UserError(f"unsafe archive: {why}")
            archive.extractall(dest, filter="data")
    except tarfile.TarError as err:
        raise UserError(f"not a tar archive ({err})") from None
    roots = sorted((p.parent for p in dest.rglob("task.toml")), key=lambda p: len(p.parts))
    if not roots:
        raise UserError("archive holds no task.toml")
    return roots[0]


def _rows(path: Path) -> list[tuple[str, bytes]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise UserError(f"not a readable parquet file ({type(err).__name__})", where=str(path)) from None
    if BINARY_COLUMN not in table.column_names:
        raise UserError(f"{BINARY_COLUMN}: no such column (columns: {', '.join(table.column_names)})",
                        where=str(path))
    names = next((table.column(c).to_pylist() for c in NAME_COLUMNS if c in table.column_names), None)
    blobs = table.column(BINARY_COLUMN).to_pylist()
    return [(str(names[i]) if names and names[i] else f"{path.stem}-{i}", blob or b"") for i, blob in
            enumerate(blobs)]


def _task_name(label: str) -> str:
    base = re.sub(r"(\.tar)?(\.gz|\.tgz|\.bz2|\.xz)?$", "", posixpath.basename(label))
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "task"


def _parquet_tasks(files: list[Path], summary: ImportSummary) -> list[Task]:
    tasks = []
    for path in files:
        for label, blob in _rows(path):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    task = load_task(extract_task_tar(blob, Path(tmp)))
                except UserError as err:
                    summary.errors.append(f"{path}: {label}: {err}")
                    continue
            task.name = _task_name(label)
            tasks.append(task)
    return tasks


def import_tasks(source: str | Path, out: str | Path) -> ImportSummary:
    """Import every task of ``source`` (a parquet file, a directory of parquet files, or a directory of
    Harbor task folders) into ``out`` (new or empty) as Harbor folders with an ``index.jsonl``. Names are
    made unique with a ``-N`` suffix."""
    source, out = Path(source), Path(out)
    summary = ImportSummary()
    if source.is_file():
        tasks = _parquet_tasks([source], summary)
    elif source.is_dir() and not any(source.rglob("task.toml")) and any(source.rglob("*.parquet")):
        tasks = _parquet_tasks(sorted(source.rglob("*.parquet")), summary)
    elif source.is_dir():
        report = load_task_dir(source)
        tasks, summary.errors = report.tasks, report.errors
    else:
        raise UserError("no such file or directory", where=str(source))
    write_imported(tasks, out, summary)
    return summary


def write_imported(tasks: list[Task], out: Path, summary: ImportSummary) -> None:
    """Write ``tasks`` into ``out`` (new or empty) as Harbor folders with an ``index.jsonl``, names made
    unique with a ``-N`` suffix, each recorded in ``summary.imported``."""
    if out.exists() and any(out.iterdir()):
        raise UserError("output directory is not empty", where=str(out))
    out.mkdir(parents=True, exist_ok=True)
    rows, used = [], set()
    for task in tasks:
        name, n = task.name, 1
        while name in used:
            n += 1
            name = f"{task.name}-{n}"
        used.add(name)
        task.name = name
        write_task(task, out / name)
        rows.append(index_row(task, None, name))
        summary.imported.append(name)
    write_index(out, rows)
