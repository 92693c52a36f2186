"""echo-rl: train terminal agents with ECHO (GRPO on action tokens + λ·cross-entropy on terminal output).

Data flows one way, one module per noun:
Task → Sandbox → Episode → Trajectory → Batch → objective → optimizer step → metrics, checkpoints, reports.

Public API for use in another trainer:

- :mod:`echo_rl.loss` — ``env_cross_entropy`` and ``echo_loss`` on per-token log-probs and masks (any trainer:
  TRL, verl, SkyRL, your own);
- :mod:`echo_rl.integrations.trl` — ``EchoGRPOTrainer`` (TRL's ``GRPOTrainer`` + λ·env CE) and
  ``EchoEnvironment`` (echo-rl's tasks and sandboxes as a TRL ``environment_factory``); needs the ``trl`` extra;
- :mod:`echo_rl.objective` — echo-rl's own objective on its ``Batch`` (GRPO term, schedules, balancing).
"""

from echo_rl.loss import echo_loss, env_cross_entropy

__version__ = "0.1.0"

__all__ = ["__version__", "echo_loss", "env_cross_entropy"]
