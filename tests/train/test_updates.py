"""Several optimizer updates per RL step and the KL to a reference model (issue 16, items 5 and 6):
whole-group mini-batches with their own denominators, the scheduler counting updates, clipping acting
on the second update, and the k3 term against a frozen reference, each against a hand computation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "objective"))
from objective_helpers import standard_trajectories, tiny_model  # noqa: E402

from echo_rl.configfile import config_from_dict  # noqa: E402
from echo_rl.objective import LambdaBalancer, aggregate, full_logits_logprobs  # noqa: E402
from echo_rl.distributed import DistContext  # noqa: E402
from echo_rl.train.optim import build_optimizer  # noqa: E402
from echo_rl.train.reference import Reference, load_reference  # noqa: E402
from echo_rl.train.update import build_batch, combine_updates, mini_batches, policy_update, with_fixed_logprobs  # noqa: E402

torch.set_num_threads(1)


def config(**sections):
    base = {"train": {"rollouts_per_task": 3, "tasks_per_step": 2, "micro_batch_size": 2},
            "sampling": {"temperature": 1.0}, "optim": {"warmup_steps": 0, "grad_clip": 1e9, "weight_decay": 0.0},
            "objective": {"algorithm": "grpo"}}
    for name, values in sections.items():
        base[name] = base.get(name, {}) | values
    return config_from_dict(base)


def on_policy(model, trajs, cfg):
    """``trajs`` with their sampler log-probs replaced by ``model``'s own (π_old = π_θ before the update)."""
    batch, _ = build_batch(trajs, cfg, 0)
    logprobs = full_logits_logprobs(model, batch.input_ids, batch.attention_mask).logprobs.detach()
    for i, traj in enumerate(trajs):
        row = logprobs[i, : len(traj.roles)].tolist()
        traj.logprobs = [lp if role == 1 else 0.0 for lp, role in zip(row, traj.roles)]
    return trajs


def test_mini_batches_hold_whole_groups_with_their_own_denominators():
    """3 groups in 2 mini-batches: groups {0, 1} and {2} (group k in ⌊k·M/G⌋), each normalised by its own
    valid sequences and action tokens; an empty part when there are fewer groups than parts."""
    trajs = standard_trajectories() + [t for t in standard_trajectories()[:3]]
    for traj in trajs[6:]:
        traj.task_id = "c"
    cfg = config(train={"tasks_per_step": 3, "mini_batches": 2})
    batch, _ = build_batch(trajs, cfg, 0)
    first, second = mini_batches(batch, 2, DistContext())
    assert first.group_ids.tolist() == [0] * 3 + [1] * 3 and second.group_ids.tolist() == [2] * 3
    for part in (first, second):
        counts = (part.n_seqs, part.n_policy_seqs, part.n_action_tokens)
        assert counts == (len(part), len(part), float(part.action_mask.sum()))
    assert [len(p) for p in mini_batches(batch, 4, DistContext())] == [3, 3, 3, 0]


def test_scheduler_counts_optimizer_updates():
    """2 mini-batches × 2 epochs = 4 updates in one RL step: a warm-up of 4 updates is over after it."""
    model = tiny_model()
    cfg = config(train={"mini_batches": 2, "update_epochs": 2}, optim={"warmup_steps": 4, "lr": 1e-4})
    optimizer, scheduler = build_optimizer(model, cfg.optim)
    record = policy_update(model, optimizer, scheduler, LambdaBalancer(cfg.objective), standard_trajectories(), cfg, 1,
                           0, DistContext())
    assert record["update/optimizer_updates"] == 4 and scheduler.last_epoch == 4
    assert record["update/lr"] == pytest.approx(1e-4 * (1 + 2 + 3 + 4) / 5 / 4)  # the mean over the 4 updates
    assert record["update/seqs"] == 6  # counted once, not once per epoch


def test_clipping_changes_the_gradient_of_the_second_update():
    """Epoch 2 of the same rollouts: after one update at lr 1e-2 the ratios to the sampler (π_old = π_θ
    before the step) leave [0.8, 1.2]; the second update's gradient is the hand-computed gradient of
    −(1/|S|) Σ_s (1/|A_s|) Σ_t A_s·ρ_t over the unclipped tokens only, not the unclipped surrogate's."""
    model = tiny_model()
    cfg = config(train={"update_epochs": 2}, optim={"lr": 1e-2})
    trajs = on_policy(model, standard_trajectories(), cfg)
    optimizer, scheduler = build_optimizer(model, cfg.optim)
    seen: list[tuple[dict, list]] = []
    optimizer.register_step_pre_hook(lambda opt, *_: seen.append(
        ({n: p.detach().clone() for n, p in model.named_parameters()}, [p.grad.clone() for p in model.parameters()])))
    record = policy_update(model, optimizer, scheduler, LambdaBalancer(cfg.objective), trajs, cfg, 1, 0, DistContext())
    assert len(seen) == 2

    model.load_state_dict(seen[1][0])  # θ after the first update
    batch, _ = build_batch(trajs, cfg, 0)
    logprobs = full_logits_logprobs(model, batch.input_ids, batch.attention_mask).logprobs
    ratio = (logprobs - batch.sampling_logprobs).exp()
    adv = batch.advantages[:, None]
    clipped = ((ratio > 1.2) & (adv > 0)) | ((ratio < 0.8) & (adv < 0))
    mask = batch.action_mask.float()
    assert float((clipped & batch.action_mask).sum()) > 0, "nothing clipped: the test needs a larger step"

    def grad_of(tokens):
        model.zero_grad(set_to_none=True)
        aggregate(-adv * ratio * tokens, mask, "seq_mean", batch.n_seqs, 0, 1).backward(retain_graph=True)
        return [p.grad.clone() for p in model.parameters()]

    want, unclipped = grad_of(mask * ~clipped), grad_of(mask)
    for got, w in zip(seen[1][1], want):
        torch.testing.assert_close(got, w, rtol=1e-3, atol=1e-6)
    assert max(float((u - w).abs().max()) for u, w in zip(unclipped, want)) > 1e-4
    assert record["update/clip_frac_high"] + record["update/clip_frac_low"] > 0


def test_kl_term_is_k3_to_the_frozen_reference():
    """All rewards equal (A = 0): the policy loss is β · seq_mean k3, k3 = e^(r) − r − 1 with
    r = log π_ref − log π_θ from full-logits passes of the two models; kl_ref is its token mean."""
    model, ref_model = tiny_model(seed=0), tiny_model(seed=1).requires_grad_(False)
    cfg = config(objective={"algorithm": "grpo", "kl_coef": 0.5}, optim={"lr": 1e-9})
    trajs = standard_trajectories()
    for traj in trajs:
        traj.reward = 0.0
    batch, _ = build_batch(trajs, cfg, 0)
    ids, attention = batch.input_ids, batch.attention_mask
    r = full_logits_logprobs(ref_model, ids, attention).logprobs - full_logits_logprobs(model, ids, attention).logprobs
    k3 = (r.exp() - r - 1).detach()
    mask = batch.action_mask.float()
    optimizer, scheduler = build_optimizer(model, cfg.optim)
    with pytest.raises(ValueError, match="reference model"):
        policy_update(model, optimizer, scheduler, LambdaBalancer(cfg.objective), trajs, cfg, 1, 0, DistContext())
    record = policy_update(model, optimizer, scheduler, LambdaBalancer(cfg.objective), trajs, cfg, 1, 0, DistContext(),
                           reference=Reference(ref_model, "float32"))
    assert record["update/policy_loss"] == pytest.approx(0.5 * float(aggregate(k3, mask, "seq_mean", 6, 0, 1)), rel=1e-4)
    assert record["update/kl_ref"] == pytest.approx(float((k3 * mask).sum() / mask.sum()), rel=1e-4)
    assert record["update/kl_ref"] > 0.01


def test_reference_is_loaded_only_for_a_kl_term_frozen_in_the_compute_dtype():
    assert load_reference(config(), "tiny", "cpu") is None
    reference = load_reference(config(objective={"kl_coef": 0.1}, policy={"dtype": "bfloat16"}), "tiny", "cpu")
    params = list(reference.model.parameters())
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in params)


def test_tis_over_several_updates_takes_pi_old_from_before_the_first_update():
    """With TIS, π_old is the trainer's own policy before the step; over 2 epochs it is computed once up
    front (the detached π_θ of each update would make every ratio 1 again)."""
    model = tiny_model()
    cfg = config(objective={"algorithm": "grpo", "tis_cap": 2.0}, train={"update_epochs": 2})
    batch, _ = build_batch(standard_trajectories(), cfg, 0)
    fixed = with_fixed_logprobs(model, None, batch, cfg, DistContext())
    want = full_logits_logprobs(model, batch.input_ids, batch.attention_mask).logprobs
    torch.testing.assert_close(fixed.old_logprobs * batch.action_mask, want.detach() * batch.action_mask,
                               rtol=1e-4, atol=1e-5)
    single = config(objective={"algorithm": "grpo", "tis_cap": 2.0})
    assert with_fixed_logprobs(model, None, batch, single, DistContext()).old_logprobs is None


def test_a_metric_only_some_updates_hold_is_averaged_over_those():
    updates = [{"loss": 1.0, "seqs": 4.0}, {"loss": 3.0, "seqs": 4.0, "grad_env_to_policy": 0.5}]
    record = combine_updates(updates, per_epoch=2)
    assert record == {"loss": 2.0, "seqs": 8.0, "grad_env_to_policy": 0.5, "optimizer_updates": 2.0}
