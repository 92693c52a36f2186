"""Trajectories → one padded :class:`Batch` of tensors and masks, the objective's only input.

Rows are right-padded to the longest trajectory. Per token (``[B, T]``):

    action_mask   A   tokens the policy sampled (GRPO term)
    warning_mask      the harness's format-warnings block
    env_mask          terminal output proper (the paper's O'); O = warning ∪ env
    target_mask       the env term's targets: ``env.targets`` applied, then the turn and rollout filters

Per row (``[B]``): ``obs_count`` Z = |O| (observation content tokens, warnings included, before filters),
``advantages``, ``group_ids``, ``valid``, ``policy_rows`` (valid rows the policy term uses: all of them
unless dynamic sampling or the overlong filter took some out), ``env_rows`` (valid rows the env term uses:
all of them unless a rollout filter took some out — by default only under env_only,
:mod:`echo_rl.objective.filters`). An ``infra_error`` rollout keeps its row (so every worker sees the
same shapes) with all masks empty and ``valid`` False; an empty trajectory becomes one attended pad token
with empty masks, so no attention row is fully masked.

Denominators for the whole optimizer step travel with the batch and survive :meth:`Batch.micro_batches`,
so the micro-batch losses sum to the full-batch loss: ``n_seqs`` = valid rows, ``n_env_seqs`` = env rows
(env term), ``n_policy_seqs`` = policy rows and ``n_action_tokens`` = their action tokens (policy term).
Under data parallelism, or for a mini-batch of its own optimizer step, replace them with that update's
global counts (:meth:`Batch.own_counts` summed, :meth:`Batch.with_counts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from echo_rl.config import ObjectiveConfig
from echo_rl.objective.filters import (
    TURN_FILTERS,
    observation_spans,
    passes_rollout_filters,
    rollout_filters_on,
    turn_filter_flags,
)
from echo_rl.objective.grpo import group_ids_of
from echo_rl.rollout.trajectory import Trajectory
from echo_rl.roles import Role

_TARGET_ROLES = {
    "env_only": (Role.ENV,),
    "warning_only": (Role.WARNING,),
    "warning_plus_env": (Role.WARNING, Role.ENV),
    "full_observation": (Role.WARNING, Role.ENV),  # plus the observation messages' wrapper tokens
}


@dataclass
class Batch:
    """Padded rollouts of one optimizer step (or a micro-batch of it); see the module docstring."""

    input_ids: Tensor  # [B, T] long
    attention_mask: Tensor  # [B, T] long, 1 on real tokens
    action_mask: Tensor  # [B, T] bool
    warning_mask: Tensor  # [B, T] bool
    env_mask: Tensor  # [B, T] bool
    target_mask: Tensor  # [B, T] bool
    sampling_logprobs: Tensor  # [B, T] float32, 0 off the action tokens
    obs_count: Tensor  # [B] float32, Z = |O|
    advantages: Tensor  # [B] float32
    group_ids: Tensor  # [B] long
    valid: Tensor  # [B] bool
    temperature: float  # the sampling temperature of the rollouts (the policy term's τ)
    n_seqs: float
    n_action_tokens: float
    stats: dict[str, float] = field(default_factory=dict)  # env-target filter shares, for the whole step
    policy_rows: Tensor | None = None  # [B] bool, rows in the policy term (None: every row)
    n_policy_seqs: float | None = None  # policy-term sequences of the update (None: n_seqs)
    env_rows: Tensor | None = None  # [B] bool, valid rows the rollout filters kept (None: every valid row)
    n_env_seqs: float | None = None  # env-term sequences of the update (None: n_seqs)
    ref_logprobs: Tensor | None = None  # [B, T] reference-model log-probs, needed when kl_coef > 0
    old_logprobs: Tensor | None = None  # [B, T] the trainer's log-probs before the update (TIS, several steps)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def policy_mask(self) -> Tensor:
        """[B, T] bool: the action tokens of the policy term's rows."""
        return self.action_mask if self.policy_rows is None else self.action_mask & self.policy_rows[:, None]

    @property
    def policy_seqs(self) -> float:
        """The policy term's sequence denominator."""
        return self.n_seqs if self.n_policy_seqs is None else self.n_policy_seqs

    @property
    def env_seqs(self) -> float:
        """The env term's sequence denominator."""
        return self.n_seqs if self.n_env_seqs is None else self.n_env_seqs

    def own_counts(self) -> list[float]:
        """This batch's own (n_seqs, n_policy_seqs, n_action_tokens, n_env_seqs), to sum over ranks and hand
        back to :meth:`with_counts`."""
        rows = self.valid if self.policy_rows is None else self.valid & self.policy_rows
        env = self.valid if self.env_rows is None else self.valid & self.env_rows
        return [float(self.valid.sum()), float(rows.sum()), float(self.policy_mask.sum()), float(env.sum())]

    def with_counts(self, counts: Sequence[float]) -> Batch:
        """This batch with the denominators (n_seqs, n_policy_seqs, n_action_tokens, n_env_seqs) of its
        update."""
        n_seqs, n_policy_seqs, n_action_tokens, n_env_seqs = counts
        return dataclasses.replace(
            self, n_seqs=n_seqs, n_policy_seqs=n_policy_seqs, n_action_tokens=n_action_tokens, n_env_seqs=n_env_seqs
        )

    def _map_tensors(self, fn) -> Batch:
        changes = {
            f.name: fn(value) for f in dataclasses.fields(self) if isinstance(value := getattr(self, f.name), Tensor)
        }
        return dataclasses.replace(self, **changes)

    def micro_batch_rows(self, size: int) -> list[Tensor]:
        """Row indices of each micro-batch: the rows longest first (stable: rows of equal length keep their
        order), ``size`` at a time. Rows of like length share a micro-batch, and each is cut to its own
        longest row, so less padding is computed than with consecutive rows."""
        return list(torch.argsort(-self.attention_mask.sum(1), stable=True).split(size))

    def micro_batches(self, size: int) -> list[Batch]:
        """The micro-batches of :meth:`micro_batch_rows`, each cut to its own longest row and keeping the
        step's denominators and stats. Every loss and metric of the objective is a sum over rows (or a
        weighted mean of such sums), so the order rows are grouped in changes only float rounding."""
        return [self._rows(rows) for rows in self.micro_batch_rows(size)]

    def group_parts(self, parts: int) -> list[Batch]:
        """``parts`` mini-batches of whole groups (a group's rows are consecutive): group k of G goes to part
        ⌊k·parts/G⌋, so part sizes differ by at most one group; a part is empty when this rank holds fewer
        than ``parts`` groups. Denominators are the step's: give each part its own (:meth:`with_counts`)."""
        ids = self.group_ids.tolist()
        starts = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]] + [len(ids)]
        groups = len(starts) - 1
        bounds = [starts[-(-k * groups // parts)] for k in range(parts + 1)]  # first group of part k: ⌈k·G/P⌉
        return [self._rows(torch.arange(bounds[k], bounds[k + 1])) for k in range(parts)]

    def _rows(self, rows: Tensor) -> Batch:
        length = int(self.attention_mask[rows].sum(1).max()) if len(rows) else 1
        return self._map_tensors(lambda t: t[rows, :length] if t.dim() == 2 else t[rows])

    def to(self, device: torch.device | str) -> Batch:
        return self._map_tensors(lambda t: t.to(device))


class _RowTargets(NamedTuple):
    roles: Tensor  # [n] long
    targets: Tensor  # [n] bool, after filters
    n_before: int  # targets before filters
    removed: dict[str, int]  # targets each enabled filter names ("rollout": what the rollout filter took)
    kept: bool  # the rollout filters kept the rollout


def _row_targets(traj: Trajectory, cfg: ObjectiveConfig) -> _RowTargets:
    """Roles and env-term targets of one valid trajectory."""
    roles = torch.tensor(traj.roles, dtype=torch.long)
    targets = torch.isin(roles, torch.tensor(_TARGET_ROLES[cfg.env.targets]))
    if cfg.env.targets == "full_observation":
        for turn in traj.turns:
            for start, end in observation_spans(turn):
                targets[start:end] = True
    keep = targets.clone()
    removed: dict[str, int] = {}
    flags = turn_filter_flags(traj)
    for name in _enabled_filters(cfg):
        drop = torch.zeros_like(targets)
        for turn, flagged in zip(traj.turns, flags[name]):
            for start, end in observation_spans(turn) if flagged else ():
                drop[start:end] = True
        removed[name] = int((targets & drop).sum())
        keep &= ~drop
    kept = passes_rollout_filters(traj, cfg)
    if not kept:
        removed["rollout"] = int(keep.sum())
        keep[:] = False
    return _RowTargets(roles, keep, int(targets.sum()), removed, kept)


def _enabled_filters(cfg: ObjectiveConfig) -> list[str]:
    return [name for name in TURN_FILTERS if getattr(cfg.env.filters, name)]


def sampling_temperature(trajectories: Sequence[Trajectory]) -> float:
    """The one temperature the policy sampled ``trajectories`` at (those recording none — expert
    transcripts — aside; 1.0 when none records one). A batch mixing temperatures has no single policy-term
    τ: ValueError."""
    recorded = sorted({t.temperature for t in trajectories if t.temperature is not None})
    if len(recorded) > 1:
        raise ValueError(f"rollouts sampled at different temperatures ({', '.join(map(str, recorded))}) cannot "
                         "share a batch: the policy term has one τ")
    return recorded[0] if recorded else 1.0


def collate(
    trajectories: Sequence[Trajectory],
    advantages: Sequence[float] | Tensor,
    cfg: ObjectiveConfig,
    pad_id: int,
    group_ids: Sequence[int] | Tensor | None = None,
    policy_rows: Sequence[bool] | Tensor | None = None,
    *,
    temperature: float | None = None,
) -> Batch:
    """Pad ``trajectories`` into a :class:`Batch` (see the module docstring). ``advantages`` come from
    :func:`echo_rl.objective.compute_advantages`; ``group_ids`` default to one group per task id;
    ``policy_rows`` (default: all) from :func:`echo_rl.objective.policy_rows`. ``Batch.temperature`` is the
    trajectories' own (:func:`sampling_temperature`, refusing a mix); a caller that scores at a fixed τ
    whatever the sampler used (SFT, held-out env CE at τ = 1) passes ``temperature``.
    ``stats`` gives, for each enabled turn filter, the share of the step's env targets it names
    (``filter/<name>``; filters may overlap), the share the rollout filters took (``filter/rollout``) and
    the share removed altogether (``filter/total``); with a rollout filter on, also the share of valid
    rollouts it kept (``filter/rollouts_kept``)."""
    size = (len(trajectories), max([len(traj.token_ids) for traj in trajectories] + [1]))
    input_ids = torch.full(size, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(size, dtype=torch.long)
    roles = torch.full(size, -1, dtype=torch.long)
    target_mask = torch.zeros(size, dtype=torch.bool)
    sampling_logprobs = torch.zeros(size, dtype=torch.float32)
    valid = torch.tensor([traj.valid for traj in trajectories], dtype=torch.bool)
    env_rows = torch.zeros(len(trajectories), dtype=torch.bool)
    n_before = 0
    removed = dict.fromkeys([*_enabled_filters(cfg), "rollout"], 0)
    for i, traj in enumerate(trajectories):
        n = len(traj.token_ids)
        if n == 0:
            attention_mask[i, 0] = 1
            env_rows[i] = traj.valid and passes_rollout_filters(traj, cfg)
            continue
        input_ids[i, :n] = torch.tensor(traj.token_ids, dtype=torch.long)
        attention_mask[i, :n] = 1
        sampling_logprobs[i, :n] = torch.tensor(traj.logprobs, dtype=torch.float32)
        if traj.valid:
            row = _row_targets(traj, cfg)
            roles[i, :n], target_mask[i, :n], env_rows[i] = row.roles, row.targets, row.kept
            n_before += row.n_before
            for name, count in row.removed.items():
                removed[name] += count
    action_mask, warning_mask, env_mask = (roles == role for role in (Role.ACTION, Role.WARNING, Role.ENV))
    in_policy = valid if policy_rows is None else valid & torch.as_tensor(policy_rows, dtype=torch.bool)
    stats = {f"filter/{name}": count / max(n_before, 1) for name, count in removed.items()}
    stats["filter/total"] = 1 - int(target_mask.sum()) / max(n_before, 1)
    if rollout_filters_on(cfg):
        stats["filter/rollouts_kept"] = float(env_rows.sum()) / max(float(valid.sum()), 1.0)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        action_mask=action_mask,
        warning_mask=warning_mask,
        env_mask=env_mask,
        target_mask=target_mask,
        sampling_logprobs=sampling_logprobs,
        obs_count=(warning_mask | env_mask).sum(1).float(),
        advantages=torch.as_tensor(advantages, dtype=torch.float32).reshape(len(trajectories)),
        group_ids=torch.as_tensor(
            group_ids_of(trajectories) if group_ids is None else group_ids, dtype=torch.long
        ).reshape(len(trajectories)),
        valid=valid,
        temperature=sampling_temperature(trajectories) if temperature is None else temperature,
        n_seqs=float(valid.sum()),
        n_action_tokens=float((action_mask & in_policy[:, None]).sum()),
        stats=stats,
        policy_rows=in_policy,
        n_policy_seqs=float(in_policy.sum()),
        env_rows=env_rows,
        n_env_seqs=float(env_rows.sum()),
    )
