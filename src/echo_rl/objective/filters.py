"""Which observations the env term may learn from (stable-ECHO issue, item 2) and which rollouts env-only
adaptation keeps. Both are off by default, which gives the paper's targets.

Turn filters name observations to drop from the env targets O'; a turn's whole observation is dropped:

    parse_failed  the action drew format warnings (``not turn.parse_ok``)
    rejected      the harness ran no command for it (no command and not a done call)
    error_only    the command ran and failed: non-zero exit code, a timeout, or "command not found"
    repeated      its terminal output (ENV tokens) equals an earlier turn's, token for token

Rollout filters (for verifier-free adaptation, method §6) keep a rollout's env targets only when

    share of turns with parse_ok ≥ min_clean_turn_share   and
    share of turns with a command or done call ≥ min_valid_call_share
"""

from __future__ import annotations

from echo_rl.config import EnvFilters, EnvLossConfig
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


def passes_rollout_filters(traj: Trajectory, cfg: EnvLossConfig) -> bool:
    """True when the rollout's shares of parse-clean turns and of valid calls reach the configured minima
    (a rollout without turns has shares 0)."""
    turns = traj.turns
    clean = sum(turn.parse_ok for turn in turns) / max(len(turns), 1)
    valid = sum(turn.command is not None or turn.done for turn in turns) / max(len(turns), 1)
    return clean >= cfg.min_clean_turn_share and valid >= cfg.min_valid_call_share
