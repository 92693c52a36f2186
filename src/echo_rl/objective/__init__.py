"""The ECHO objective: GRPO on action tokens + λ·cross-entropy on terminal output, from one forward pass.

logprobs.py  chunked per-token log-probs (never the full [T × V] logits)
grpo.py      advantages, the clipped policy term, aggregation modes, TIS
echo.py      the env term, the combined loss, held-out env CE
filters.py   env-target filters and env-only rollout filters
balance.py   the term weights (λ schedules, adaptive λ), per-term gradient probe, separate clipping
selection.py which rollouts the policy term uses (dynamic sampling, overlong filter)
"""

from echo_rl.objective.balance import LambdaBalancer, TermGradients, per_term_gradients, scheduled_lambda, term_weights
from echo_rl.objective.echo import (
    batch_logprobs,
    combined_metrics,
    echo_loss,
    env_cross_entropy,
    env_term,
    frozen_logprobs,
    loss_terms,
)
from echo_rl.objective.grpo import aggregate, compute_advantages, group_ids_of, policy_term
from echo_rl.objective.selection import informative_groups, informative_rows, policy_rows
from echo_rl.objective.logprobs import TokenLogprobs, full_logits_logprobs, token_logprobs

__all__ = [
    "LambdaBalancer",
    "TermGradients",
    "TokenLogprobs",
    "aggregate",
    "batch_logprobs",
    "combined_metrics",
    "compute_advantages",
    "echo_loss",
    "env_cross_entropy",
    "env_term",
    "frozen_logprobs",
    "full_logits_logprobs",
    "group_ids_of",
    "informative_groups",
    "informative_rows",
    "loss_terms",
    "per_term_gradients",
    "policy_rows",
    "policy_term",
    "scheduled_lambda",
    "term_weights",
    "token_logprobs",
]
