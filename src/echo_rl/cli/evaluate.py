"""``echo-rl eval``: evaluate one policy (``policy.model``: a checkpoint, a run directory, ``tiny``, …)
into a run directory of its own, then write its report there.

The result is recorded at the checkpoint's training step (0 for anything that is not one of our
checkpoints), so ``echo-rl report`` can set it beside training runs.
"""

from __future__ import annotations

from pathlib import Path

from echo_rl.config import RunConfig
from echo_rl.report import build_report
from echo_rl.train.checkpoint import STATE, read_state
from echo_rl.distributed import shutdown
from echo_rl.train.policy_sync import make_policy
from echo_rl.train.session import open_session


def evaluate_policy(cfg: RunConfig, out: Path) -> tuple[Path, list[str]]:
    """Evaluate ``cfg.policy`` on ``cfg.eval.splits`` into ``out``; return the path of the report and the
    :meth:`~echo_rl.eval.results.EvalResult.unverified_notes` (tasks without tests, for which pass@k is not available)."""
    session = open_session(cfg, out, resume=False, splits=tuple(cfg.eval.splits))
    try:
        checkpoint = Path(session.model_path)
        step = read_state(checkpoint)["step"] if (checkpoint / STATE).is_file() else 0
        policy = make_policy(cfg, session.model, session.tokenizer, model_path=session.model_path)
        result = session.evaluator(policy).run(step, session.run)
        session.log(result.flatten())
        report = build_report([session.run.root], session.run.report) if session.ctx.is_main else session.run.report
    finally:
        session.close()
        shutdown(session.ctx)
    return report, result.unverified_notes()
