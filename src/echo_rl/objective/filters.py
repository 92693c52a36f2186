"""Which observations the env term may learn from (stable-ECHO issue, item 2) and which rollouts it learns
from at all (verifier-free adaptation, issue 21). Turn filters are off by default (the paper's targets);
rollout filters are on by default under ``env_only`` only.

Turn filters name observations to drop from the env targets O'; a turn's whole observation is dropped:

    parse_failed  the action drew format warnings (``not turn.parse_ok``)
    rejected      the harness ran no command for it (no command and not a done call)
    error_only    the command ran and failed: non-zero exit code, a timeout, or "command not found"
    repeated      its terminal output (ENV tokens) equals an earlier turn's, token for token

Rollout filters (verifier-free adaptation, method §6: "rollouts filtered to clean tool calls") keep a
rollout's env targets only when

    share of turns with parse_ok ≥ min_clean_turn_share   and
    share of turns whose call ran (a command executed, or a done call) ≥ min_valid_call_share

Unset minima (None) follow the algorithm: 1 under ``env_only`` — every turn a clean tool call (parsed
without warnings, and ran; a generation cut off at the token limit never ran) — and 0 (off) under ``grpo``
and ``echo``, whose env term has always learnt from every rollout. A rollout the filters drop leaves the
env term altogether: its targets are emptied and it is not counted in the term's sequence mean.
"""

from __future__ import annotations

from echo_rl.config import EnvFilters, ObjectiveConfig
from echo_rl.rollout.trajectory import Span, Trajectory, Turn

TURN_FILTERS = tuple(EnvFilters.model_fields)


def _error_only(turn: Turn) -> bool:
    ran = turn.command is not None
    return ran and (turn.timed_out or turn.exit_code not in (None, 0) or "command not found" in turn.output)


def turn_filter_flags(traj: Trajectory) -> dict[str, list[bool]]:
    """For each filter in :data:`TURN_FILTERS`, one flag per turn: True where the filter drops that turn's
    observation."""
    flags: dict[str, list[bool]] = {name: [] for name in TURN_FILTERS}
    seen: set[tuple[int, ...]] = set()
    for turn in traj.turns:
        output = tuple(traj.token_ids[slice(*turn.env_span)]) if turn.env_span else ()
        flags["parse_failed"].append(not turn.parse_ok)
        flags["rejected"].append(turn.rejected)
        flags["error_only"].append(_error_only(turn))
        flags["repeated"].append(bool(output) and output in seen)
        seen.add(output)
    return flags


def observation_spans(turn: Turn) -> list[Span]:
    """Token spans of a turn's observation message (the wrapper included when the span is known)."""
    if turn.observation_span is not None:
        return [turn.observation_span]
    return [span for span in (turn.warning_span, turn.env_span) if span is not None]


def rollout_filter_minima(cfg: ObjectiveConfig) -> tuple[float, float]:
    """(min_clean_turn_share, min_valid_call_share) in force: the configured ones, unset ones by algorithm
    (module docstring)."""
    default = 1.0 if cfg.algorithm == "env_only" else 0.0
    env = cfg.env
    return (
        default if env.min_clean_turn_share is None else env.min_clean_turn_share,
        default if env.min_valid_call_share is None else env.min_valid_call_share,
    )


def rollout_filters_on(cfg: ObjectiveConfig) -> bool:
    """True when some rollout filter can drop a rollout (a minimum above 0)."""
    return any(share > 0 for share in rollout_filter_minima(cfg))


def passes_rollout_filters(traj: Trajectory, cfg: ObjectiveConfig) -> bool:
    """True when the rollout's shares of parse-clean turns and of calls that ran reach the minima in force
    (a rollout without turns has shares 0)."""
    min_clean, min_valid = rollout_filter_minima(cfg)
    turns = traj.turns
    clean = sum(turn.parse_ok for turn in turns) / max(len(turns), 1)
    valid = sum(not turn.rejected for turn in turns) / max(len(turns), 1)
    return clean >= min_clean and valid >= min_valid
