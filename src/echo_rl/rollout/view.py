"""Print trajectories as transcripts colour-coded by token role (``echo-rl rollout show FILE``).

Consecutive tokens of one role are decoded together, so what is printed is exactly ``decode(token_ids)``,
cut where the role changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.rule import Rule
from rich.text import Text

from echo_rl.rollout.trajectory import Trajectory
from echo_rl.roles import Role

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ROLE_STYLES = {
    Role.PROMPT: "bright_black",
    Role.ACTION: "bold green",
    Role.TEMPLATE: "magenta",
    Role.WARNING: "yellow",
    Role.ENV: "cyan",
}


def role_runs(trajectory: Trajectory, tokenizer: PreTrainedTokenizerBase) -> Iterator[tuple[Role, str]]:
    """``(role, text)`` for each run of consecutive tokens with one role, in order."""
    position = 0
    for role, run in groupby(trajectory.roles):
        n = len(list(run))
        ids = trajectory.token_ids[position : position + n]
        position += n
        yield Role(role), tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _header(trajectory: Trajectory) -> Text:
    t = trajectory
    reward = "—" if t.reward is None else format(t.reward, "g")
    return Text(
        f"{t.task_id} #{t.group_index}  outcome={t.outcome} reward={reward} stop={t.stop_reason}  "
        f"turns={len(t.turns)} tokens={len(t.token_ids)}  {t.verifier_reason}",
        style="bold",
    )


def render_trajectory(trajectory: Trajectory, tokenizer: PreTrainedTokenizerBase) -> Group:
    """A header line and the transcript, each role in its colour."""
    body = Text()
    for role, text in role_runs(trajectory, tokenizer):
        body.append(text, style=ROLE_STYLES[role])
    return Group(Rule(_header(trajectory)), body)


def legend() -> Text:
    text = Text("roles: ")
    for role, style in ROLE_STYLES.items():
        text.append(f" {role.name.lower()} ", style=f"reverse {style}")
        text.append(" ")
    return text


def show(trajectories: list[Trajectory], tokenizer: PreTrainedTokenizerBase, console: Console | None = None) -> None:
    console = console or Console()
    console.print(legend())
    for trajectory in trajectories:
        console.print(render_trajectory(trajectory, tokenizer))
