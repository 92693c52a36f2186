"""The ``echo-rl`` command line.

Each subcommand lives in its own module of this package and imports the layer it drives lazily, so that
``echo-rl --help`` stays fast. Errors from bad input print one line, ``echo-rl: error: …``, and exit 2;
``--debug`` (or ``ECHO_RL_DEBUG=1``) shows the traceback instead. Before any command, the CPU's numeric
kernels are pinned to its instruction-set class (:mod:`echo_rl.cpu_kernels`), for this process and those it
starts.
"""

from __future__ import annotations

import os
import sys

import click

from echo_rl import __version__
from echo_rl.cli.demo import demo
from echo_rl.cli.report import report
from echo_rl.cli.rollout import rollout
from echo_rl.cli.sandbox import sandbox
from echo_rl.cli.tasks import tasks
from echo_rl.cli.train import eval_command, sft, train
from echo_rl.cpu_kernels import pin
from echo_rl.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="echo-rl")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
def cli(debug: bool) -> None:
    """echo-rl: train terminal agents with ECHO (GRPO + λ·terminal-output cross-entropy)."""


for command in (sandbox, tasks, rollout, train, sft, eval_command, demo, report):
    cli.add_command(command)


def _fail(message: str, code: int) -> int:
    click.echo(f"echo-rl: error: {' '.join(message.split())}", err=True)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    pin()
    debug = "--debug" in args or os.environ.get("ECHO_RL_DEBUG") == "1"
    try:
        result = cli.main(args=args, prog_name="echo-rl", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.exceptions.Abort:
        return _fail("aborted", 130)
    except click.UsageError as err:
        if debug:
            raise
        hint = f" (see 'echo-rl {err.ctx.command_path.partition(' ')[2]} --help')" if err.ctx else ""
        return _fail(err.format_message() + hint.replace("''", "'").replace(" ' --help'", " '--help'"), 2)
    except click.ClickException as err:
        if debug:
            raise
        return _fail(err.format_message(), err.exit_code or 2)
    except UserError as err:
        if debug:
            raise
        return _fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as err:  # noqa: BLE001 - the last line of defence of the CLI
        if debug:
            raise
        return _fail(f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback)", 1)
    return result if isinstance(result, int) else 0
