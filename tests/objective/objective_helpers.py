"""Hand-built trajectories and a tiny Qwen3 model for the objective tests."""

from __future__ import annotations

import dataclasses
import random

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from echo_rl.objective.batch import Batch, collate
from echo_rl.config import ObjectiveConfig
from echo_rl.objective import LambdaBalancer, compute_advantages, full_logits_logprobs, group_ids_of, policy_term
from echo_rl.rollout.trajectory import Trajectory, Turn
from echo_rl.roles import Role

VOCAB = 300
PAD = 0


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> Qwen3ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
    )
    return Qwen3ForCausalLM(config).to(dtype)


def trajectory(
    turns: list[dict],
    prompt: int = 4,
    task_id: str = "task",
    reward: float = 0.0,
    outcome: str = "failed",
    seed: int = 0,
) -> Trajectory:
    """Prompt, then per turn: ``action`` tokens; unless ``done``, an observation = 2 template tokens,
    ``warning`` warning tokens, ``env`` env tokens (a count or explicit ids), 1 template token. Other keys
    (command, exit_code, output, warnings, timed_out) go to the Turn."""
    rng = random.Random(seed)
    ids: list[int] = []
    roles: list[int] = []

    def add(role: Role, tokens: int | list[int]) -> tuple[int, int]:
        start = len(ids)
        new = tokens if isinstance(tokens, list) else [rng.randrange(10, VOCAB) for _ in range(tokens)]
        ids.extend(new)
        roles.extend([role] * len(new))
        return start, len(ids)

    add(Role.PROMPT, prompt)
    built = []
    for spec in turns:
        turn = Turn(
            action_span=add(Role.ACTION, spec.get("action", 3)),
            action_text="",
            command=spec.get("command", "ls"),
            done=spec.get("done", False),
            warnings=spec.get("warnings", []),
            output=spec.get("output", "ok"),
            exit_code=spec.get("exit_code", 0),
            timed_out=spec.get("timed_out", False),
        )
        if not turn.done:
            start = add(Role.TEMPLATE, 2)[0]
            if spec.get("warning", 0):
                turn.warning_span = add(Role.WARNING, spec["warning"])
            turn.env_span = add(Role.ENV, spec.get("env", 4))
            turn.observation_span = (start, add(Role.TEMPLATE, 1)[1])
        built.append(turn)
    logprobs = [-rng.uniform(0.5, 3.0) if role == Role.ACTION else 0.0 for role in roles]
    return Trajectory(
        task_id=task_id, token_ids=ids, roles=roles, logprobs=logprobs, turns=built, reward=reward, outcome=outcome
    )


def standard_trajectories() -> list[Trajectory]:
    """Two groups of three rollouts with mixed rewards, warnings, errors and lengths."""
    trajs = []
    for g, task in enumerate(("a", "b")):
        for i, reward in enumerate((1.0, 0.0, 0.0 if g else 1.0)):
            turns = [
                {"action": 3 + i, "warning": 2 if i == 1 else 0, "env": 3 + g},
                {"action": 2, "env": 5 + i, "exit_code": i},
                {"action": 2, "done": True, "command": None},
            ][: 2 + (i % 2)]
            trajs.append(trajectory(turns, task_id=task, reward=reward, seed=10 * g + i))
    return trajs


def weights(cfg: ObjectiveConfig, step: int = 0) -> tuple[float, float]:
    """(w_π, w_env) at ``step`` as the trainer gets them: from a fresh balancer."""
    return LambdaBalancer(cfg).weights(step)


def make_batch(trajs: list[Trajectory], cfg: ObjectiveConfig | None = None, temperature: float = 1.0):
    cfg = cfg or ObjectiveConfig()
    advantages, _ = compute_advantages(
        [t.reward for t in trajs], group_ids_of(trajs), [t.valid for t in trajs], cfg.advantage_std_norm
    )
    sampled = [dataclasses.replace(t, temperature=temperature) for t in trajs]  # τ travels with the rollouts
    return collate(sampled, advantages, cfg, PAD)


def backward_grads(model: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    """∇loss for every parameter (fresh; fails if a parameter got none)."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def hand_batch(action_mask, advantages, sampling_logprobs=None, env_mask=None, warning_mask=None, **fields) -> Batch:
    """A Batch straight from [B, T] masks (lists or tensors); targets default to the env mask."""
    action_mask = torch.as_tensor(action_mask, dtype=torch.bool)
    none = torch.zeros_like(action_mask)
    env_mask = none if env_mask is None else torch.as_tensor(env_mask, dtype=torch.bool)
    warning_mask = none if warning_mask is None else torch.as_tensor(warning_mask, dtype=torch.bool)
    rows = action_mask.shape[0]
    sampled = torch.zeros(action_mask.shape) if sampling_logprobs is None else torch.as_tensor(sampling_logprobs)
    defaults = {
        "input_ids": torch.ones(action_mask.shape, dtype=torch.long),
        "attention_mask": torch.ones(action_mask.shape, dtype=torch.long),
        "action_mask": action_mask,
        "warning_mask": warning_mask,
        "env_mask": env_mask,
        "target_mask": env_mask,
        "sampling_logprobs": sampled.float(),
        "obs_count": (env_mask | warning_mask).sum(1).float(),
        "advantages": torch.as_tensor(advantages, dtype=torch.float32),
        "group_ids": torch.zeros(rows, dtype=torch.long),
        "valid": torch.ones(rows, dtype=torch.bool),
        "temperature": 1.0,
        "n_seqs": float(rows),
        "n_action_tokens": float(action_mask.sum()),
    }
    return Batch(**(defaults | fields))


def separate_reference(model, batch: Batch, cfg: ObjectiveConfig, lam: float):
    """L_GRPO + λ·CE from two independent full-logits passes (the CE at the training temperature or at
    τ = 1, as configured; Z = |O|), and its gradients: what the one-pass ECHO loss must equal."""
    ids, mask = batch.input_ids, batch.attention_mask
    policy, _ = policy_term(full_logits_logprobs(model, ids, mask, batch.temperature).logprobs, batch, cfg)
    env_temperature = batch.temperature if cfg.env.temperature_scaled else 1.0
    nll = -full_logits_logprobs(model, ids, mask, env_temperature).logprobs
    ce = ((nll * batch.target_mask).sum(1) / batch.obs_count.clamp(min=1)).sum() / batch.n_seqs
    loss = policy + lam * ce
    return loss, backward_grads(model, loss)
