"""Collapse alarms (failure-modes issue, item 6).

Four signals are tracked per RL step (names as in the step's metrics, :mod:`echo_rl.train.metrics`):
``update/entropy_action`` (mean entropy of the policy over action tokens, from the objective's forward
pass), ``rollout/distinct_commands`` (share of distinct commands within a group), ``update/env_ce`` (on
the step's transcripts) and ``rollout/episode_length`` (mean turns). A signal alarms when its value falls below
``threshold × baseline``, the baseline being the median of its previous ``window`` values (at least
``min_history`` of them). Alarms go to metrics (``alarm/<signal>``), the progress display and the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import median

from echo_rl.config import AlarmConfig

SIGNALS = {
    "update/entropy_action": "entropy_drop",
    "rollout/distinct_commands": "distinct_commands_drop",
    "update/env_ce": "env_ce_drop",
    "rollout/episode_length": "episode_length_drop",
}


@dataclass(frozen=True)
class Alarm:
    signal: str
    step: int
    value: float
    baseline: float
    threshold: float

    def message(self) -> str:
        return (
            f"{self.signal} fell to {self.value:.3g} (< {self.threshold:g} × baseline {self.baseline:.3g}) "
            f"at step {self.step}"
        )

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


class CollapseMonitor:
    """Keeps each signal's history and reports alarms; ``state()``/``load_state()`` survive a resume."""

    def __init__(self, cfg: AlarmConfig) -> None:
        self.cfg = cfg
        self.history: dict[str, list[float]] = {name: [] for name in SIGNALS}

    def update(self, step: int, signals: dict[str, float | None]) -> list[Alarm]:
        alarms = []
        for name, field in SIGNALS.items():
            value = signals.get(name)
            if value is None:
                continue
            threshold = getattr(self.cfg, field)
            past = self.history[name][-self.cfg.window :]
            if threshold is not None and len(past) >= self.cfg.min_history:
                baseline = median(past)
                if baseline > 0 and value < threshold * baseline:
                    alarms.append(Alarm(name, step, value, baseline, threshold))
            self.history[name].append(value)
        return alarms

    def state(self) -> dict[str, list[float]]:
        return {name: values[-self.cfg.window :] for name, values in self.history.items()}

    def load_state(self, state: dict[str, list[float]]) -> None:
        self.history = {name: list(state.get(name, [])) for name in SIGNALS}
