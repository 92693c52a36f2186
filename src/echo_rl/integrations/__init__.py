"""ECHO in other trainers.

environment.py  echo-rl's tasks and sandboxes as a tool-calling environment (TRL's ``environment_factory``)
trl.py          ``EchoGRPOTrainer``: TRL's GRPOTrainer + λ·env CE (needs the ``trl`` extra; imported on demand)
"""
