"""Task corpora on disk: Harbor folders per split plus ``index.jsonl``.

    build_corpus("corpus/", cfg.tasks)       # train / validation / test / heldout from procedural families
    tasks = load_corpus("corpus/", "train")   # the tasks of one split, in index order
    splits = draw_splits(cfg.tasks)          # the same splits in memory, nothing written
    tasks = resolve_tasks("csv_lookup:0-9")  # a family range, a task folder, a Harbor dir or a corpus

Layout::

    DIR/index.jsonl                 one JSON object per task: name, split, path, family, domain, difficulty, seed
    DIR/{train,validation,test,heldout}/<name>/   Harbor task folders
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from echo_rl.config import TasksConfig
from echo_rl.errors import UserError
from echo_rl.tasks.families import DEFAULT_BASE_IMAGE, FAMILIES, generate
from echo_rl.tasks.harbor import is_task_folder, load_task, load_task_dir, write_task
from echo_rl.tasks.quality import dedup
from echo_rl.tasks.task import Task

INDEX = "index.jsonl"


def index_row(task: Task, split: str | None, path: str) -> dict[str, object]:
    meta = task.metadata
    return {
        "name": task.name,
        "split": split,
        "path": path,
        "family": task.family,
        "domain": task.domain,
        "difficulty": task.difficulty,
        "seed": meta.get("seed"),
    }


def write_index(out: Path, rows: list[dict[str, object]]) -> None:
    (out / INDEX).write_text("".join(json.dumps(row) + "\n" for row in rows))


def _draw(names: list[str], first_seed: int, base_image: str) -> Iterator[Task]:
    """Tasks round-robin over ``names``, each family's seeds counting up from ``first_seed``."""
    seed = first_seed
    while True:
        for name in names:
            yield generate(name, seed, base_image)
        seed += 1


@dataclass
class Splits:
    """Tasks per split (``train``, ``validation``, ``heldout``), the families each came from, and how many
    near-duplicates were dropped while drawing them."""

    tasks: dict[str, list[Task]] = field(default_factory=dict)
    families: dict[str, list[str]] = field(default_factory=dict)
    duplicates_dropped: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {split: len(tasks) for split, tasks in self.tasks.items()}


def draw_splits(cfg: TasksConfig, base_image: str = DEFAULT_BASE_IMAGE) -> Splits:
    """Procedural splits: ``validation`` (``cfg.num_validation``), ``train`` (``cfg.num_train``) and, when
    ``cfg.num_test``, ``test`` from the training families on disjoint seeds (one stream: train continues past
    validation's seeds, test past train's, so adding a test split changes no other split), ``heldout``
    (``cfg.num_heldout``) from the held-out families. Near-duplicates are dropped across all splits and
    replaced by fresh seeds. Deterministic in ``cfg``."""
    train_families = cfg.families or sorted(set(FAMILIES) - set(cfg.heldout_families))
    plan = {
        "validation": (train_families, cfg.num_validation),
        "train": (train_families, cfg.num_train),
        **({"test": (train_families, cfg.num_test)} if cfg.num_test else {}),
        "heldout": (sorted(cfg.heldout_families), cfg.num_heldout),
    }
    streams = {
        "validation": _draw(train_families, cfg.seed * 1_000_000, base_image),
        "heldout": _draw(sorted(cfg.heldout_families), cfg.seed * 1_000_000, base_image),
    }
    streams["train"] = streams["test"] = streams["validation"]  # one stream: disjoint seeds, in plan order
    splits = Splits(families={split: names for split, (names, _) in plan.items()})
    kept: list[Task] = []
    for split, (names, count) in plan.items():
        chosen: list[Task] = []
        while len(chosen) < count and names:
            batch = [next(streams[split]) for _ in range(count - len(chosen))]
            fresh, dropped = dedup(batch, cfg.dedup_threshold, seen=kept + chosen)
            if not fresh:
                raise UserError(f"{split}: only {len(chosen)} distinct tasks found, {count} asked for")
            splits.duplicates_dropped += len(dropped)
            chosen += fresh
        splits.tasks[split] = chosen
        kept += chosen
    return splits


def build_corpus(out: str | Path, cfg: TasksConfig, base_image: str = DEFAULT_BASE_IMAGE) -> Splits:
    """Write :func:`draw_splits` as a corpus under ``out`` (which must not exist or be empty)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError("output directory is not empty", where=str(out))
    splits = draw_splits(cfg, base_image)
    rows = []
    for split, tasks in splits.tasks.items():
        for task in tasks:
            path = f"{split}/{task.name}"
            write_task(task, out / path)
            rows.append(index_row(task, split, path))
    out.mkdir(parents=True, exist_ok=True)
    write_index(out, rows)
    return splits


def read_index(root: str | Path) -> list[dict[str, object]]:
    """The rows of ``root/index.jsonl``; one-line :class:`UserError` on a bad line."""
    path = Path(root) / INDEX
    if not path.is_file():
        raise UserError("missing", where=str(path))
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"line {number}: not JSON", where=str(path)) from None
            if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                raise UserError(f"line {number}: path: expected a string", where=str(path))
            rows.append(row)
    return rows


def load_corpus(root: str | Path, split: str | None = None) -> list[Task]:
    """The tasks of ``root``'s index (one split, or all), in index order."""
    root = Path(root)
    return [load_task(root / str(row["path"])) for row in read_index(root) if split in (None, row.get("split"))]


def _family_range(spec: str, base_image: str) -> list[Task] | None:
    name, sep, seeds = spec.partition(":")
    if not sep or name not in FAMILIES:
        return None
    first, dash, last = seeds.partition("-")
    try:
        numbers = range(int(first), int(last if dash else first) + 1)
    except ValueError:
        raise UserError(f"{spec!r}: expected FAMILY:SEED or FAMILY:FIRST-LAST") from None
    return [generate(name, seed, base_image) for seed in numbers]


def resolve_tasks(
    spec: str, split: str | None = None, base_image: str | None = None
) -> tuple[list[Task], list[str]]:
    """Tasks named by ``spec`` — ``FAMILY:SEED``, ``FAMILY:FIRST-LAST``, a corpus directory (has
    ``index.jsonl``; ``split`` selects one), a task folder (raises its :class:`UserError`) or a directory
    of task folders — and the errors of folders below it that failed to load. ``base_image`` is the FROM image of generated tasks."""
    generated = _family_range(spec, base_image or DEFAULT_BASE_IMAGE)
    if generated is not None:
        return generated, []
    root = Path(spec)
    if (root / INDEX).is_file():
        return load_corpus(root, split), []
    if not root.exists():
        raise UserError(f"no such task, family range or directory (families: {', '.join(sorted(FAMILIES))})",
                        where=spec)
    if is_task_folder(root):
        return [load_task(root)], []
    report = load_task_dir(root)
    return report.tasks, report.errors


def export_tasks(tasks: list[Task], out: str | Path) -> Path:
    """Write ``tasks`` as Harbor folders under ``out`` with an index (split: null)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in tasks:
        target = out / task.name
        if target.exists():
            shutil.rmtree(target)
        write_task(task, target)
        rows.append(index_row(task, None, task.name))
    write_index(out, rows)
    return out
