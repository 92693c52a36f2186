"""Where metrics and transcripts go: ``metrics.jsonl`` (always), TensorBoard (when installed and enabled),
Weights & Biases (when ``logging.wandb_project`` is set), and ``rollouts/*.jsonl``.

Records are flat dicts with ``kind`` ("train", "eval", "sft") and ``step``; numeric fields become scalars
``<kind>/<key>`` in TensorBoard and W&B. Only the process that owns the run directory (rank 0) logs.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from echo_rl.config import LoggingConfig
from echo_rl.errors import UserError
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.rundir import RunDir, atomic_write_text


def check_logging(cfg: LoggingConfig) -> None:
    """Fail early, with one line, when W&B is configured but not installed."""
    if cfg.wandb_project and importlib.util.find_spec("wandb") is None:
        raise UserError("logging.wandb_project is set but wandb is not installed (pip install 'echo-rl[logging]')")


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in record.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "step"
    }


class MetricsLogger:
    """Fans each record out to every configured sink."""

    def __init__(self, run: RunDir, cfg: LoggingConfig, config: dict[str, Any], name: str) -> None:
        self.run = run
        self.tensorboard = None
        self.wandb = None
        if cfg.tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(log_dir=str(run.logs / "tensorboard"))
        if cfg.wandb_project:
            check_logging(cfg)
            import wandb

            self.wandb = wandb.init(
                project=cfg.wandb_project, entity=cfg.wandb_entity, name=name, config=config, dir=str(run.logs),
                resume="allow",
            )

    def log(self, record: dict[str, Any]) -> None:
        self.run.log_metrics(record)
        scalars = {f"{record.get('kind', 'train')}/{key}": value for key, value in _scalars(record).items()}
        step = int(record.get("step", 0))
        if self.tensorboard is not None:
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


def write_transcripts(path: Path, trajectories: Sequence[Trajectory], tokenizer: Any) -> None:
    """Write trajectories as jsonl (``Trajectory.to_dict()`` plus the decoded ``text``)."""
    lines = [
        json.dumps({**t.to_dict(), "text": tokenizer.decode(t.token_ids, skip_special_tokens=False)})
        for t in trajectories
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))

