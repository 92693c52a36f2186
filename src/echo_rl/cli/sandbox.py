"""``echo-rl sandbox``: drop into or run a command in the sandbox an agent would get; remove leftovers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

T = TypeVar("T")


@click.group()
def sandbox() -> None:
    """Sandboxed terminals: interactive shell, one-off commands, garbage collection."""


def _sandbox_options(func: Callable[..., object]) -> Callable[..., object]:
    options = [
        click.option("--backend", type=click.Choice(["local", "container"]), default="local", show_default=True),
        click.option("--image", default=None, help="Container image (container backend; default sandbox.base_image)."),
        click.option("--network/--no-network", default=False, show_default=True, help="Allow network access."),
        click.option("--workdir", default=None, help="Working directory inside the sandbox (default /home/user)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _config(backend: str, workdir: str | None, network: bool, timeout: float | None = None):  # noqa: ANN202
    from echo_rl.config import SandboxConfig

    values: dict[str, object] = {"backend": backend, "allow_network": network}
    if workdir:
        values["workdir"] = workdir
    if timeout:
        values["command_timeout_s"] = timeout
    return SandboxConfig(**values)


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; sandbox infrastructure failures become one-line user errors."""
    from echo_rl.errors import UserError
    from echo_rl.sandbox.base import SandboxError

    try:
        return asyncio.run(coro())
    except SandboxError as err:
        raise UserError(f"sandbox: {err}") from None


@sandbox.command()
@_sandbox_options
@click.option(
    "--task",
    "task_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A Harbor task folder: start from its initial state (its Dockerfile or setup.sh).",
)
def shell(backend: str, image: str | None, network: bool, workdir: str | None, task_dir: Path | None) -> int:
    """An interactive bash in the sandbox an agent would get (leave it with `exit`)."""
    cfg = _config(backend, workdir, network)

    async def session() -> int:
        from echo_rl.sandbox import make_sandbox

        if task_dir is not None:
            from echo_rl.tasks.environment import open_task_sandbox
            from echo_rl.tasks.harbor import load_task

            box = await open_task_sandbox(load_task(task_dir), cfg, label="echo-rl-cli")
        else:
            box = make_sandbox(cfg, image=image, label="echo-rl-cli")
            await box.start()
        try:
            click.echo(f"echo-rl: {backend} sandbox, network {'on' if network else 'off'}; `exit` leaves it", err=True)
            return await box.attach()
        finally:
            await box.stop()

    return _run(session)


@sandbox.command("exec")
@_sandbox_options
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds (default 30).")
@click.argument("command", nargs=-1, required=True)
def exec_command(
    backend: str, image: str | None, network: bool, workdir: str | None, timeout: float | None, command: tuple[str, ...]
) -> None:
    """Run COMMAND (after `--`) in a fresh sandbox and print the ExecResult as JSON."""
    cfg = _config(backend, workdir, network, timeout)

    async def once() -> dict[str, object]:
        from echo_rl.sandbox import make_sandbox

        async with make_sandbox(cfg, image=image, label="echo-rl-cli") as box:
            return (await box.exec(" ".join(command))).to_dict()

    click.echo(json.dumps(_run(once), ensure_ascii=False))


@sandbox.command()
@click.option("--label", default=None, help="Only leftovers of this run label.")
@click.option("--containers/--no-containers", default=True, show_default=True, help="Also look for containers.")
def gc(label: str | None, containers: bool) -> None:
    """Remove sandbox directories, processes and containers whose owning process is gone."""
    from echo_rl.sandbox.gc import collect_garbage

    report = _run(lambda: collect_garbage(label, containers=containers))
    click.echo(
        f"removed {report.directories} sandbox directories, {report.processes} processes, "
        f"{report.containers} containers"
    )
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
