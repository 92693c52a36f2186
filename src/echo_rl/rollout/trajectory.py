"""A rollout as the trainer sees it: token ids with one role per token.

Roles are :class:`echo_rl.roles.Role`.

``logprobs[i]`` is the log-probability the sampler gave ``token_ids[i]`` for ACTION tokens and 0.0
elsewhere (0.0 also for actions of samplers that give none: text backends, expert transcripts).
``temperature`` is the sampling temperature the actions were drawn at (None: no policy sampled them —
expert transcripts, other agents' files); ``exact_logprobs`` is True when the recorded log-probs are the
trainer's temperature-scaled full-vocabulary distribution (see :mod:`echo_rl.rollout.policy.base`).
Invariant: ``len(token_ids) == len(roles) == len(logprobs)``.

Files: :func:`save_trajectories` / :func:`load_trajectories` write and read ``.jsonl`` (one trajectory per
line) or ``.parquet``; a reload is exact (``==`` the saved objects). Files written before these two
fields existed kept them in ``meta["temperature"]`` and ``meta["sampler_logprobs"]``: they load into the
fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from echo_rl.roles import Role

Outcome = Literal["solved", "failed", "agent_limit", "infra_error", "unverified"]
StopReason = Literal[
    "done", "max_turns", "max_context_tokens", "max_turn_tokens", "agent_timeout", "env_setup_error", "error"
]


Span = tuple[int, int]  # [start, end) token indices
_OLD_META_KEYS = {"temperature": "temperature", "exact_logprobs": "sampler_logprobs"}  # field: its meta key in older files


@dataclass
class Turn:
    """One assistant turn and the observation that answered it (spans index ``Trajectory.token_ids``)."""

    action_span: Span  # sampled tokens, the end-of-turn token included
    action_text: str  # decoded action without the end-of-turn token: what the parser read
    command: str | None = None
    done: bool = False
    warnings: list[str] = field(default_factory=list)
    observation_span: Span | None = None  # whole observation message: wrapper and next generation prompt
    warning_span: Span | None = None
    env_span: Span | None = None
    output: str = ""  # terminal output as shown to the agent (after truncation)
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0

    @property
    def parse_ok(self) -> bool:
        """True when the harness found nothing to warn about in the action."""
        return not self.warnings

    @property
    def rejected(self) -> bool:
        """The harness ran nothing for this action: no command and not a done call."""
        return self.command is None and not self.done


@dataclass
class Trajectory:
    task_id: str
    token_ids: list[int]
    roles: list[int]
    logprobs: list[float]
    turns: list[Turn] = field(default_factory=list)
    reward: float | None = 0.0  # None: no verifier judged the episode (outcome "unverified")
    outcome: Outcome = "failed"
    verifier_reason: str = ""
    stop_reason: StopReason = "done"
    family: str | None = None
    split: str | None = None
    group_index: int = 0  # which sample of the task's group
    policy_step: int = 0
    temperature: float | None = None  # sampling temperature of the actions (None: not sampled by a policy)
    exact_logprobs: bool = False  # logprobs are the trainer's distribution at ``temperature``
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.token_ids) == len(self.roles) == len(self.logprobs):
            raise ValueError(
                f"trajectory {self.task_id}: {len(self.token_ids)} ids, {len(self.roles)} roles, "
                f"{len(self.logprobs)} logprobs"
            )

    @property
    def valid(self) -> bool:
        """False for infrastructure failures, which are excluded from groups and pass@k denominators."""
        return self.outcome != "infra_error"

    @property
    def verified(self) -> bool:
        """True when a verifier judged the episode: valid, and not ``unverified`` (a task without tests, or a
        verifier-free run). Only verified episodes carry a reward and count towards pass rates."""
        return self.valid and self.outcome != "unverified"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """Inverse of :meth:`to_dict`; keys that are not fields (e.g. a decoded ``text``) are ignored; the
        sampling fields of an older record come from its meta (module docstring)."""
        known = {f.name for f in fields(cls)}
        data = {key: value for key, value in data.items() if key in known}
        meta = data["meta"] = dict(data.get("meta") or {})
        for name, old in _OLD_META_KEYS.items():
            if old in meta:
                value = meta.pop(old)
                data.setdefault(name, value)
        turns = []
        for turn in data.pop("turns", []):
            turn = dict(turn)
            for key in ("action_span", "observation_span", "warning_span", "env_span"):
                if turn.get(key) is not None:
                    turn[key] = tuple(turn[key])
            turns.append(Turn(**turn))
        return cls(turns=turns, **data)


_JSON_COLUMNS = ("turns", "timings", "meta")  # nested, free-form: stored as JSON text in parquet


def save_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> None:
    """Write ``trajectories`` to ``path`` (``.parquet``, else jsonl) atomically."""
    from echo_rl.rundir import atomic_write_bytes

    path = Path(path)
    records = [t.to_dict() for t in trajectories]
    if path.suffix != ".parquet":
        atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    for record in records:
        for key in _JSON_COLUMNS:
            record[key] = json.dumps(record[key])
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def load_trajectories(path: str | Path) -> list[Trajectory]:
    """Read a file written by :func:`save_trajectories` (or any jsonl of :meth:`Trajectory.to_dict`
    records). Raises :class:`~echo_rl.errors.UserError` for a missing or malformed file."""
    from echo_rl.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError("no such trajectory file", where=str(path))
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            records = pq.read_table(path).to_pylist()
            for record in records:
                for key in _JSON_COLUMNS:
                    record[key] = json.loads(record[key])
        else:
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [Trajectory.from_dict(record) for record in records]
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise UserError(f"not a trajectory file ({type(err).__name__}: {err})", where=str(path)) from None
