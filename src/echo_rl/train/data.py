"""The tasks a run uses, per split, resolved from ``cfg.tasks`` before any work starts.

Sources, in order of precedence for each split (``train``, ``validation``, ``test``, ``heldout``): an
explicit source (``tasks.train`` / ``tasks.validation`` / ``tasks.test`` / ``tasks.heldout``: a task folder, a directory of task
folders, a corpus, or a family range such as ``key_copy:0-9``), a corpus built by ``echo-rl tasks build``
(``tasks.corpus``), or — with neither — splits drawn in memory from the procedural families
(deterministic in ``cfg.tasks``). Every problem is a one-line :class:`UserError`.

Tasks without ``tests/test.sh`` may sit in any split; the train split may hold them only when the
algorithm needs no reward (``objective.algorithm=env_only``, verifier-free adaptation).
"""

from __future__ import annotations

from collections.abc import Iterable

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.tasks.corpus import draw_splits, load_corpus, resolve_tasks
from echo_rl.tasks.environment import check_runnable
from echo_rl.tasks.task import Task


def _explicit(path: str, split: str, base_image: str) -> list[Task]:
    """The tasks of ``path``: a corpus' ``split`` when it has that split, else all of them."""
    tasks, errors = resolve_tasks(path, split=split, base_image=base_image)
    if not tasks and not errors:
        tasks, errors = resolve_tasks(path, base_image=base_image)
    if errors:
        raise UserError(f"tasks.{split}: {errors[0]}", where=path)
    return tasks


def load_task_splits(cfg: RunConfig, splits: Iterable[str]) -> dict[str, list[Task]]:
    """``{split: tasks}`` for each requested split (see the module docstring). Raises UserError for a
    missing directory, an empty ``train`` split, a task the configured sandbox backend cannot run, or a
    train task without tests under a reward-based algorithm."""
    splits = list(splits)
    out: dict[str, list[Task]] = {}
    generated: dict[str, list[Task]] | None = None
    for split in splits:
        explicit = getattr(cfg.tasks, split)
        if explicit:
            out[split] = _explicit(explicit, split, cfg.sandbox.base_image)
        elif cfg.tasks.corpus:
            out[split] = load_corpus(cfg.tasks.corpus, split)
        else:
            if generated is None:
                generated = draw_splits(cfg.tasks, cfg.sandbox.base_image).tasks
            out[split] = generated.get(split, [])  # no test split unless tasks.num_test
    if "train" in out and not out["train"]:
        raise UserError("the train split has no tasks", where=cfg.tasks.train or cfg.tasks.corpus or "tasks")
    for tasks in out.values():
        for task in tasks:
            check_runnable(task, cfg.sandbox)
    untested = next((task for task in out.get("train", []) if not task.has_tests), None)
    if untested is not None and cfg.objective.uses_reward:
        raise UserError(
            f"has no tests/test.sh, which objective.algorithm={cfg.objective.algorithm} needs for its reward "
            "(train on tasks without tests with objective.algorithm=env_only)",
            where=f"task {untested.name}",
        )
    return out
