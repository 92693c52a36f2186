"""One policy evaluated in a run directory of its own: what ``echo-rl eval`` and the demo's final evaluations run.

    result = evaluate_checkpoint(cfg, out)       # cfg.policy.model on cfg.eval.splits, into the run directory out
"""

from __future__ import annotations

from pathlib import Path

from echo_rl.config import RunConfig
from echo_rl.eval.results import EvalResult
from echo_rl.train.checkpoint import STATE, read_state
from echo_rl.train.policy_sync import make_policy
from echo_rl.train.session import open_session


def evaluate_checkpoint(cfg: RunConfig, out: Path, *, model: str | None = None, step: int | None = None) -> EvalResult:
    """Open a fresh session in ``out`` (``model`` overrides ``cfg.policy.model``), evaluate its policy on
    ``cfg.eval.splits`` (:meth:`~echo_rl.train.session.Session.evaluator`: pass@k, env CE) and log the result.
    It is recorded at ``step``; by default the checkpoint's training step, 0 for anything that is not one of
    our checkpoints, so ``echo-rl report`` can set it beside training runs."""
    session = open_session(cfg, out, resume=False, splits=tuple(cfg.eval.splits), model=model)
    try:
        if step is None:
            checkpoint = Path(session.model_path)
            step = read_state(checkpoint)["step"] if (checkpoint / STATE).is_file() else 0
        policy = make_policy(cfg, session.model, session.tokenizer, model_path=session.model_path)
        result = session.evaluator(policy).run(step, session.run)
        session.log(result.flatten())
    finally:
        session.close()
    return result
