"""echo-rl: train terminal agents with ECHO (GRPO on action tokens + λ·cross-entropy on terminal output).

Data flows one way, one module per noun:
Task → Sandbox → Episode → Trajectory → Batch → objective → optimizer step → metrics, checkpoints, reports.
"""

__version__ = "0.1.0"
