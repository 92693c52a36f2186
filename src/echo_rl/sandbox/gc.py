"""Remove what crashed runs left behind: local sandbox directories (and any process still using one), their
cgroups and containers whose owning process is gone (see :mod:`echo_rl.sandbox.owner`).

Sandboxes of live processes are never touched, so a run may call :func:`collect_garbage` at start-up
while other runs work; ``echo-rl sandbox gc`` calls it by hand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import docker.errors

from echo_rl.sandbox import cgroups, procs
from echo_rl.sandbox.base import SandboxError
from echo_rl.sandbox.engine import connect
from echo_rl.sandbox.local import remove_tree
from echo_rl.sandbox.owner import LABEL_KEY, OWNER_KEY, Owner, state_roots


@dataclass
class GcReport:
    """What :func:`collect_garbage` removed, and why it could not look at containers (if it could not)."""

    directories: int = 0
    processes: int = 0
    containers: int = 0
    cgroups: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "directories": self.directories,
            "processes": self.processes,
            "containers": self.containers,
            "cgroups": self.cgroups,
            "notes": self.notes,
        }


async def collect_garbage(
    label: str | None = None, *, containers: bool = True, engine_url: str | None = None
) -> GcReport:
    """Remove leftovers of dead owners (of run ``label`` only, when given); see the module docstring."""
    report = GcReport()
    await _collect_directories(label, report)
    await _collect_cgroups(label, report)
    if containers:
        await asyncio.to_thread(_collect_containers, label, engine_url, report)
    return report


async def _collect_directories(label: str | None, report: GcReport) -> None:
    for entry in sorted(entry for root in state_roots() if root.is_dir() for entry in root.iterdir()):
        parsed = Owner.from_dir_name(entry.name)
        if parsed is None or (label is not None and parsed[0] != label) or parsed[1].is_alive():
            continue
        pids = procs.with_argument(str(entry))
        procs.kill(pids)
        await procs.wait_gone(pids)
        report.processes += len(pids)
        await asyncio.to_thread(remove_tree, entry)
        report.directories += 1


async def _collect_cgroups(label: str | None, report: GcReport) -> None:
    for path in cgroups.groups():
        parsed = Owner.from_dir_name(path.name)
        if parsed is None or (label is not None and parsed[0] != label) or parsed[1].is_alive():
            continue
        group = cgroups.SandboxCgroup([path])
        pids = group.pids()
        procs.kill(pids)
        await procs.wait_gone(pids)
        report.processes += len(pids)
        try:
            await asyncio.to_thread(group.remove)
            report.cgroups += 1
        except OSError as err:
            report.notes.append(f"cgroup {path}: {err}")


def _collect_containers(label: str | None, engine_url: str | None, report: GcReport) -> None:
    try:
        client = connect(engine_url)
        wanted = f"{LABEL_KEY}={label}" if label else LABEL_KEY
        found = client.containers.list(all=True, filters={"label": wanted})
    except (SandboxError, docker.errors.DockerException) as err:
        report.notes.append(f"containers not checked: {err}")
        return
    for container in found:
        owner = Owner.from_tag(container.labels.get(OWNER_KEY, ""))
        if owner is None or owner.is_alive():
            continue
        try:
            container.remove(force=True)
            report.containers += 1
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as err:
            report.notes.append(f"container {container.short_id}: {err}")
