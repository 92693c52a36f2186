"""Corpora: `tasks build` splits, held-out families, determinism, near-duplicate removal, import of Harbor
directories and of the OpenThoughts parquet layout (safe extraction)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from echo_rl.config import TasksConfig
from echo_rl.errors import UserError
from echo_rl.tasks.corpus import build_corpus, draw_splits, load_corpus, read_index, resolve_tasks
from echo_rl.tasks.families import generate
from echo_rl.tasks.harbor import write_task
from echo_rl.tasks.importer import extract_task_tar, import_tasks
from echo_rl.tasks.quality import dedup

SMALL = {"num_train": 40, "num_validation": 10, "num_heldout": 6, "heldout_families": ["pointer_chase", "make_target"]}


def test_a_test_split_on_seeds_disjoint_from_validation_leaves_the_other_splits_as_they_were(tmp_path):
    plain = draw_splits(TasksConfig(**SMALL))
    with_test = draw_splits(TasksConfig(**SMALL, num_test=8))
    assert with_test.counts == {"validation": 10, "train": 40, "test": 8, "heldout": 6}
    for split in ("validation", "train", "heldout"):  # existing configs and corpora are unchanged
        assert [t.name for t in with_test.tasks[split]] == [t.name for t in plain.tasks[split]], split
    seeds = {split: {(t.family, t.metadata["seed"]) for t in tasks} for split, tasks in with_test.tasks.items()}
    assert not seeds["test"] & seeds["validation"] and not seeds["test"] & seeds["train"]
    assert {family for family, _ in seeds["test"]} <= {family for family, _ in seeds["train"]}  # in-distribution
    build_corpus(tmp_path / "c", TasksConfig(**SMALL, num_test=8))
    assert [t.name for t in load_corpus(tmp_path / "c", "test")] == [t.name for t in with_test.tasks["test"]]


def test_build_writes_splits_with_whole_families_held_out(tmp_path):
    summary = build_corpus(tmp_path / "c", TasksConfig(**SMALL))
    assert summary.counts == {"validation": 10, "train": 40, "heldout": 6}
    rows = read_index(tmp_path / "c")
    assert [r["split"] for r in rows].count("train") == 40
    by_split = {s: {r["family"] for r in rows if r["split"] == s} for s in ("train", "validation", "heldout")}
    assert by_split["heldout"] == {"pointer_chase", "make_target"}
    assert not by_split["heldout"] & (by_split["train"] | by_split["validation"])
    assert by_split["validation"] <= by_split["train"], "validation is in-distribution"
    names = [r["name"] for r in rows]
    assert len(set(names)) == len(names), "splits are disjoint"
    train = load_corpus(tmp_path / "c", "train")
    assert len(train) == 40 and all((tmp_path / "c" / "train" / t.name / "task.toml").is_file() for t in train)
    assert len(dedup(load_corpus(tmp_path / "c"))[1]) == 0


def test_splits_in_memory_equal_the_written_corpus(tmp_path):
    cfg = TasksConfig(**SMALL)
    build_corpus(tmp_path / "c", cfg)
    splits = draw_splits(cfg)
    for split in ("train", "validation", "heldout"):
        assert splits.tasks[split] == load_corpus(tmp_path / "c", split)


def test_build_is_deterministic_and_refuses_a_non_empty_directory(tmp_path):
    cfg = TasksConfig(**SMALL, families=["key_copy", "log_count"])
    build_corpus(tmp_path / "a", cfg)
    build_corpus(tmp_path / "b", cfg)
    assert (tmp_path / "a" / "index.jsonl").read_text() == (tmp_path / "b" / "index.jsonl").read_text()
    assert load_corpus(tmp_path / "a") == load_corpus(tmp_path / "b")
    assert {r["family"] for r in read_index(tmp_path / "a") if r["split"] == "train"} == {"key_copy", "log_count"}
    with pytest.raises(UserError, match="output directory is not empty"):
        build_corpus(tmp_path / "a", cfg)


def test_dedup_drops_near_duplicates_only():
    task = generate("csv_lookup", 1)
    twin = generate("csv_lookup", 1)
    twin.name = "twin"
    near = generate("csv_lookup", 1)
    near.name = "near"
    near.instruction = near.instruction.replace("?", " ?")
    others = [generate("csv_lookup", seed) for seed in range(2, 8)]
    kept, dropped = dedup([task, *others, twin, near])
    assert [t.name for t in dropped] == ["twin", "near"]
    assert kept == [task, *others]
    kept, dropped = dedup(others, seen=[others[0]])
    assert dropped == [others[0]]


def test_resolve_tasks_names(tmp_path):
    assert [t.name for t in resolve_tasks("json_field:3-5")[0]] == ["json_field-3", "json_field-4", "json_field-5"]
    write_task(generate("key_copy", 0), tmp_path / "one")
    assert [t.name for t in resolve_tasks(str(tmp_path / "one"))[0]] == ["one"]
    with pytest.raises(UserError, match="no such task, family range or directory"):
        resolve_tasks(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="expected FAMILY:SEED or FAMILY:FIRST-LAST"):
        resolve_tasks("key_copy:x")
    assert resolve_tasks(str(tmp_path / "one"), base_image="b:1")[0][0].files["environment/Dockerfile"].startswith(
        b"FROM debian"
    ), "a task folder keeps its own Dockerfile"


# ---------------------------------------------------------------- import


def task_tar(task, prefix: str = "", extra: list[tarfile.TarInfo] = (), gzip: bool = True) -> bytes:
    """A tar of ``task``'s Harbor folder (files under ``prefix``), plus raw ``extra`` members."""
    buffer = io.BytesIO()
    files = {"task.toml": None, "instruction.md": task.instruction.encode(), **task.files}
    import tomli_w

    files["task.toml"] = tomli_w.dumps(task.config).encode()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as archive:
        for rel, data in files.items():
            info = tarfile.TarInfo(prefix + rel)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def test_import_openthoughts_parquet_extracts_safely(tmp_path):
    good = generate("key_copy", 3)
    rows = {
        "path": ["good-one.tar.gz", "plain.tar", "abs.tar.gz", "dotdot.tar.gz", "symlink.tar.gz", "hardlink.tar.gz",
                 "fifo.tar.gz", "junk.tar.gz", "empty.tar.gz"],
        "task_binary": [
            task_tar(good, prefix="good-one/"),
            task_tar(generate("csv_lookup", 2), gzip=False),
            task_tar(good, extra=[member("/etc/evil")]),
            task_tar(good, extra=[member("tests/../../evil")]),
            task_tar(good, extra=[member("tests/out", tarfile.SYMTYPE, "../../../etc/passwd")]),
            task_tar(good, extra=[member("tests/hard", tarfile.LNKTYPE, "/etc/passwd")]),
            task_tar(good, extra=[member("tests/pipe", tarfile.FIFOTYPE)]),
            b"not a tar at all",
            task_tar(good, prefix="x/")[:0],
        ],
    }
    pq.write_table(pa.table(rows), tmp_path / "rl.parquet")
    summary = import_tasks(tmp_path / "rl.parquet", tmp_path / "out")
    assert summary.imported == ["good-one", "plain"]
    reasons = "\n".join(summary.errors)
    assert len(summary.errors) == 7
    for expected in ("abs.tar.gz: unsafe archive: absolute path '/etc/evil'", "dotdot.tar.gz: unsafe archive: '..'",
                     "symlink.tar.gz: unsafe archive: link 'tests/out' points outside",
                     "hardlink.tar.gz: unsafe archive: link 'tests/hard' points outside",
                     "fifo.tar.gz: unsafe archive: 'tests/pipe' is not a regular file",
                     "junk.tar.gz: not a tar archive", "empty.tar.gz: not a tar archive"):
        assert expected in reasons, reasons
    assert not Path("/etc/evil").exists() and not (tmp_path / "evil").exists()
    imported = load_corpus(tmp_path / "out")
    assert imported[0].files == good.files and imported[0].config == good.config
    assert json.loads((tmp_path / "out" / "index.jsonl").read_text().splitlines()[0])["name"] == "good-one"


def test_extract_finds_the_task_folder(tmp_path):
    root = extract_task_tar(task_tar(generate("key_copy", 1), prefix="a/b/"), tmp_path)
    assert root == tmp_path / "a" / "b"


def test_import_parquet_without_the_binary_column_is_a_user_error(tmp_path):
    pq.write_table(pa.table({"x": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(UserError, match="task_binary: no such column"):
        import_tasks(tmp_path / "bad.parquet", tmp_path / "out")


def test_import_harbor_directory_reports_bad_and_keeps_names_unique(tmp_path):
    for seed in (1, 2):
        write_task(generate("key_copy", seed), tmp_path / "src" / f"set{seed}" / "same")
    (tmp_path / "src" / "broken").mkdir()
    (tmp_path / "src" / "broken" / "instruction.md").write_text("hi\n")
    summary = import_tasks(tmp_path / "src", tmp_path / "out")
    assert summary.imported == ["same", "same-2"]
    assert len(summary.errors) == 1 and "broken/task.toml: missing" in summary.errors[0]
