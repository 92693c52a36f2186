"""Quality gates for tasks: near-duplicate removal, the solvability filter, and the per-family check
(the reference solution passes, a no-op agent fails, generation is deterministic).

    kept, dropped = dedup(tasks)                              # near-duplicates removed, order kept
    report = await solvability_filter(tasks, solve)           # keep what `solve` solves ≥ 1 of k times
    checks = await check_families(names, seeds, cfg.sandbox)  # oracle / no-op pass counts per family
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from echo_rl.config import SandboxConfig
from echo_rl.sandbox.base import SandboxError, stop_after_use
from echo_rl.tasks.environment import open_task_sandbox
from echo_rl.tasks.families import FAMILIES, generate
from echo_rl.tasks.replay import record_reference
from echo_rl.tasks.task import Task
from echo_rl.tasks.verifier import verify

# ---------------------------------------------------------------- near-duplicates

_ROWS, _BANDS = 8, 8  # MinHash LSH: P(candidate) = 1-(1-J^8)^8: 0.99 at J=0.9, 0.03 at J=0.5
_SALTS = np.random.default_rng(20240601).integers(1, 2**63, size=_ROWS * _BANDS, dtype=np.uint64)
_MULT = np.uint64(0x9E3779B97F4A7C15)


def shingles(task: Task, size: int = 3) -> frozenset[int]:
    """Word ``size``-grams of what the agent sees of the task: instruction, initial state, reference
    solution (as CRC-32 values, stable across processes)."""
    parts = [task.instruction, task.setup_script or "", *(task.reference_commands or [])]
    words = re.findall(r"\w+|[^\w\s]", " ".join(parts).lower())
    return frozenset(zlib.crc32(" ".join(words[i : i + size]).encode()) for i in range(max(1, len(words) - size + 1)))


def _signature(grams: frozenset[int]) -> np.ndarray:
    values = np.fromiter(grams, dtype=np.uint64, count=len(grams)) if grams else np.zeros(1, np.uint64)
    mixed = (values[:, None] ^ _SALTS[None, :]) * _MULT
    return (mixed ^ (mixed >> np.uint64(29))).min(axis=0)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def dedup(tasks: Iterable[Task], threshold: float = 0.9, seen: Iterable[Task] = ()) -> tuple[list[Task], list[Task]]:
    """Split ``tasks`` into (kept, dropped): a task is dropped when its shingle Jaccard similarity to an
    earlier kept task (or to one of ``seen``) is ≥ ``threshold``. Deterministic. Candidates come from
    MinHash banding (a pair at J = 0.9 is found with probability 0.99, identical tasks always) and a
    signature estimate; every drop is confirmed by the exact similarity."""
    buckets: dict[bytes, list[int]] = {}
    known: list[frozenset[int]] = []
    signatures: list[np.ndarray] = []
    kept, dropped = [], []
    for is_seen, task in [*((True, t) for t in seen), *((False, t) for t in tasks)]:
        grams = shingles(task)
        signature = _signature(grams)
        bands = [signature[i : i + _ROWS].tobytes() + bytes([i]) for i in range(0, _ROWS * _BANDS, _ROWS)]
        candidates = sorted({i for band in bands for i in buckets.get(band, ())})
        if not is_seen and candidates:
            estimates = (np.stack([signatures[i] for i in candidates]) == signature).mean(axis=1)
            likely = [i for i, e in zip(candidates, estimates) if e >= threshold - 0.1]
            if any(jaccard(grams, known[i]) >= threshold for i in likely):
                dropped.append(task)
                continue
        for band in bands:
            buckets.setdefault(band, []).append(len(known))
        known.append(grams)
        signatures.append(signature)
        if not is_seen:
            kept.append(task)
    return kept, dropped


# ---------------------------------------------------------------- solvability filter

SolveFn = Callable[[Task], Sequence[bool] | Awaitable[Sequence[bool]]]


@dataclass
class FilterReport:
    """Tasks kept and dropped by :func:`solvability_filter`, with every task's attempt outcomes."""

    kept: list[Task] = field(default_factory=list)
    dropped: list[Task] = field(default_factory=list)
    attempts: dict[str, list[bool]] = field(default_factory=dict)


async def solvability_filter(
    tasks: Sequence[Task], solve: SolveFn, *, min_solved: int = 1, concurrency: int = 4
) -> FilterReport:
    """Keep the tasks that ``solve`` solves at least ``min_solved`` times (the paper's filter: a strong
    policy solves it in ≥ 1 of 16 attempts). ``solve(task)`` runs k attempts with any policy backend and
    returns one bool per attempt (it may be a coroutine function). Order is kept."""
    limit = asyncio.Semaphore(concurrency)

    async def attempt(task: Task) -> list[bool]:
        async with limit:
            outcome = solve(task)
            return [bool(x) for x in (await outcome if inspect.isawaitable(outcome) else outcome)]

    results = await asyncio.gather(*(attempt(task) for task in tasks))
    report = FilterReport()
    for task, outcomes in zip(tasks, results):
        report.attempts[task.name] = outcomes
        (report.kept if sum(outcomes) >= min_solved else report.dropped).append(task)
    return report


# ---------------------------------------------------------------- per-family check


@dataclass
class FamilyCheck:
    """Per-family counts over seeds: the reference solution must pass, the untouched state must fail."""

    family: str
    domain: str
    seeds: int = 0
    oracle_passed: int = 0
    noop_passed: int = 0
    infra_errors: int = 0
    nondeterministic: int = 0
    generate_s: float = 0.0
    verify_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        clean = self.seeds - self.infra_errors
        return self.nondeterministic == 0 and self.oracle_passed == clean and self.noop_passed == 0 and clean > 0


async def check_task(task: Task, cfg: SandboxConfig, verifier_timeout_s: float, label: str) -> tuple[str, str]:
    """Verify ``task``'s untouched state (no-op), then replay its reference solution turn by turn in the
    same sandbox and verify again (oracle). Returns the two outcomes; reasons of anything unexpected are
    appended as ``outcome: reason``."""
    try:
        sandbox = await open_task_sandbox(task, cfg, label=label)
    except SandboxError as err:
        return f"infra_error: {err}", f"infra_error: {err}"
    try:
        noop = await verify(task, sandbox, verifier_timeout_s)
        await record_reference(task, sandbox)
        oracle = await verify(task, sandbox, verifier_timeout_s)
    except SandboxError as err:
        return f"infra_error: {err}", f"infra_error: {err}"
    finally:
        await stop_after_use(sandbox)
    return f"{noop.outcome}: {noop.reason}", f"{oracle.outcome}: {oracle.reason}"


async def check_families(
    names: Sequence[str],
    seeds: Sequence[int],
    cfg: SandboxConfig,
    *,
    concurrency: int = 4,
    verifier_timeout_s: float = 60.0,
    progress: Callable[[FamilyCheck], None] | None = None,
) -> list[FamilyCheck]:
    """For each family and seed: generate twice (must be identical), then :func:`check_task`. One
    :class:`FamilyCheck` per family, in ``names`` order; ``progress`` is called as each family ends."""
    limit = asyncio.Semaphore(concurrency)
    results = []
    for name in names:
        check = FamilyCheck(name, FAMILIES[name].domain, seeds=len(seeds))
        start = time.perf_counter()
        tasks = [generate(name, seed) for seed in seeds]
        check.generate_s = time.perf_counter() - start
        check.nondeterministic = sum(task != generate(name, seed) for task, seed in zip(tasks, seeds))

        async def one(task: Task) -> tuple[str, str]:
            async with limit:
                timeout = task.verifier_timeout_s or verifier_timeout_s
                return await check_task(task, cfg, timeout, label="echo-rl-check")

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one(task) for task in tasks))
        check.verify_s = time.perf_counter() - start
        for task, (noop, oracle) in zip(tasks, outcomes):
            check.infra_errors += noop.startswith("infra_error") or oracle.startswith("infra_error")
            check.noop_passed += noop.startswith("solved")
            check.oracle_passed += oracle.startswith("solved")
            if not noop.startswith("failed") or not oracle.startswith("solved"):
                check.failures.append(f"{task.name}: no-op {noop}; oracle {oracle}")
        results.append(check)
        if progress:
            progress(check)
    return results
