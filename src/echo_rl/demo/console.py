"""What every demo path shares: the console it reports to, the wall and CPU time per stage, the machine load."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from echo_rl.demo.config import DemoConfig
from echo_rl.rundir import atomic_write_text


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (sandboxes), user + system."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class MachineTicks:
    """The whole machine's CPU seconds since boot, all cores (``/proc/stat``): ``busy`` in its own work (user,
    system, interrupts), ``stolen`` by the hypervisor for other guests (a virtual machine's cores run slower
    by that share), ``total`` (idle and I/O wait included)."""

    busy: float
    stolen: float
    total: float

    @classmethod
    def now(cls) -> MachineTicks | None:
        """The counters now (None where there is no ``/proc/stat``)."""
        try:
            with open("/proc/stat") as stat:
                user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in stat.readline().split()[1:9])
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        return cls((user + nice + system + irq + softirq) / hz, steal / hz,
                   (user + nice + system + idle + iowait + irq + softirq + steal) / hz)

    def shares_since(self, before: MachineTicks) -> dict[str, float]:
        """{"busy": …, "stolen": …}: each as a share of the machine's CPU time between ``before`` and this."""
        total = max(self.total - before.total, 1e-9)
        return {"busy": (self.busy - before.busy) / total, "stolen": (self.stolen - before.stolen) / total}


def load_average() -> str:
    """The machine's 1 / 5 / 15 minute load averages ("n/a" where the system has none)."""
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


class Clock:
    """Wall time (and CPU time) per stage."""

    def __init__(self, console: Console, start: float | None = None) -> None:
        self.console = console
        self.start = time.monotonic() if start is None else start  # a worker's clock counts from the demo's start
        self.stages: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.ticks = MachineTicks.now()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the wall and CPU seconds (:func:`cpu_seconds`) spent inside to stage ``name``."""
        start, cpu = time.monotonic(), cpu_seconds()
        yield
        self.stages[name] = self.stages.get(name, 0.0) + time.monotonic() - start
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu_seconds() - cpu

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def machine_shares(self) -> dict[str, float]:
        """The machine's busy and stolen shares of CPU time since this clock started ({} where unknown)."""
        now = MachineTicks.now()
        return now.shares_since(self.ticks) if now and self.ticks else {}

    def save(self, path: Path, **extra: Any) -> None:
        """``timings.json``: wall and CPU seconds per stage, the total wall time, and ``extra``."""
        atomic_write_text(path, json.dumps({"stages": self.stages, "cpu_s": self.cpu, "total_s": self.elapsed(), **extra},
                                           indent=1))

    def log(self, text: str) -> None:
        """Print ``text`` after the seconds elapsed since the demo started."""
        self.console.print(f"[dim]{self.elapsed():6.0f}s[/dim] {text}")


def quiet_logs() -> None:
    """No tokenizer-fork warnings, chat-parsing notices or cache-variable warnings on the demo's console."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("echo_rl.harness.chat").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")


def start_demo(cfg: DemoConfig, out: Path) -> Console:
    """What every demo path does first: quiet library logs, ``cfg.threads`` torch threads, ``out`` created;
    returns the console progress goes to (stderr)."""
    import torch

    quiet_logs()
    torch.set_num_threads(cfg.threads)
    Path(out).mkdir(parents=True, exist_ok=True)
    return Console(stderr=True)
