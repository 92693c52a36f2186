"""``echo-rl eval``: evaluate one policy (``policy.model``: a checkpoint, a run directory, ``tiny``, …)
into a run directory of its own (:func:`echo_rl.train.eval_job.evaluate_checkpoint`), then write its
report there.
"""

from __future__ import annotations

from pathlib import Path

from echo_rl.config import RunConfig
from echo_rl.distributed import init_distributed, shutdown
from echo_rl.report import build_report
from echo_rl.rundir import RunDir
from echo_rl.train.eval_job import evaluate_checkpoint


def evaluate_policy(cfg: RunConfig, out: Path) -> tuple[Path, list[str]]:
    """Evaluate ``cfg.policy`` on ``cfg.eval.splits`` into ``out``; return the path of the report and the
    :meth:`~echo_rl.eval.results.EvalResult.unverified_notes` (tasks without tests, for which pass@k is not available)."""
    ctx = init_distributed(cfg.policy.device)
    run = RunDir(Path(out))
    try:
        result = evaluate_checkpoint(cfg, out)
        report = build_report([run.root], run.report) if ctx.is_main else run.report
    finally:
        shutdown(ctx)
    return report, result.unverified_notes()
