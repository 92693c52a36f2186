"""The live progress display of a run: a bar with step, reward, pass rate, env CE, tokens/s and ETA, and one
line per step (alarms in red). A verifier-free RL step (no reward) shows "no verifier" instead of reward and
pass rate, and a step under a rollout filter the share of rollouts the env term kept.
:func:`counting_bar` is the plain bar of other long jobs (episodes, replays).
Writes to stderr; disabled by ``logging.progress: false`` and on ranks > 0."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from echo_rl.train.alarms import Alarm


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def counting_bar(*extra: ProgressColumn, console: Console | None = None, transient: bool = False) -> Progress:
    """A bar per counted job (episodes, replays): its description, done / total, elapsed time, then ``extra``."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), *extra,
                    console=console, transient=transient)


class ProgressDisplay:
    def __init__(self, title: str, total: int, start: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        self.task = self.progress.add_task(title, total=total, completed=start, stats="")

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def step(self, step: int, record: dict[str, Any], alarms: Sequence[Alarm] = ()) -> None:
        """Advance to ``step`` and print its line: reward and pass rate (or "no verifier"), the share of
        rollouts kept (under a rollout filter), env CE, loss, tokens/s."""
        if record.get("kind") == "train" and "rollout/reward_mean" not in record:
            stats = "no verifier  "
        else:
            reward, passed = record.get("rollout/reward_mean"), record.get("rollout/pass_rate")
            stats = f"reward {_fmt(reward)}  pass {_fmt(passed, '.1%')}  "
        if "filter/rollouts_kept" in record:
            stats += f"kept {_fmt(record['filter/rollouts_kept'], '.0%')}  "
        stats += f"env CE {_fmt(record.get('update/env_ce'))}  {_fmt(record.get('time/tokens_per_s'), '.0f')} tok/s"
        self.progress.update(self.task, completed=step, stats=stats)
        if self.enabled:
            line = f"step {step}: loss {_fmt(record.get('update/loss'))}  {stats}"
            if record.get("rollout/infra_excluded"):
                line += f"  [yellow]infra-excluded {record['rollout/infra_excluded']}[/yellow]"
            self.console.print(line)
            for alarm in alarms:
                self.console.print(f"[bold red]ALARM[/bold red] {alarm.message()}")
