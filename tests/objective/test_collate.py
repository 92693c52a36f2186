import pytest
import torch
from objective_helpers import PAD, make_batch, standard_trajectories, trajectory

from echo_rl.objective.batch import collate
from echo_rl.config import EnvLossConfig, ObjectiveConfig
from echo_rl.roles import Role


def _positions(traj, *roles):
    return [i for i, role in enumerate(traj.roles) if role in roles]


def _true(mask_row):
    return torch.nonzero(mask_row).flatten().tolist()


def test_masks_padding_and_counts_follow_the_roles():
    trajs = standard_trajectories()
    batch = make_batch(trajs, temperature=0.8)
    length = max(len(t.token_ids) for t in trajs)
    assert batch.input_ids.shape == (6, length) and batch.temperature == 0.8
    for i, traj in enumerate(trajs):
        n = len(traj.token_ids)
        assert batch.input_ids[i, :n].tolist() == traj.token_ids and (batch.input_ids[i, n:] == PAD).all()
        assert _true(batch.attention_mask[i]) == list(range(n))
        assert _true(batch.action_mask[i]) == _positions(traj, Role.ACTION)
        assert _true(batch.warning_mask[i]) == _positions(traj, Role.WARNING)
        assert _true(batch.env_mask[i]) == _positions(traj, Role.ENV)
        assert _true(batch.target_mask[i]) == _positions(traj, Role.ENV)  # paper: env_only
        assert batch.obs_count[i] == len(_positions(traj, Role.WARNING, Role.ENV))
        assert batch.sampling_logprobs[i, :n].tolist() == pytest.approx(traj.logprobs)
    assert batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
    assert batch.n_seqs == 6 and batch.n_action_tokens == sum(len(_positions(t, Role.ACTION)) for t in trajs)


@pytest.mark.parametrize(
    ("targets", "roles"),
    [
        ("env_only", (Role.ENV,)),
        ("warning_only", (Role.WARNING,)),
        ("warning_plus_env", (Role.WARNING, Role.ENV)),
    ],
)
def test_target_variants_select_their_roles(targets, roles):
    traj = trajectory([{"warning": 2, "env": 3, "warnings": ["w"]}, {"env": 4}])
    batch = make_batch([traj], ObjectiveConfig(env=EnvLossConfig(targets=targets)))
    assert _true(batch.target_mask[0]) == _positions(traj, *roles)


def test_full_observation_targets_are_the_whole_observation_messages():
    traj = trajectory([{"warning": 2, "env": 3, "warnings": ["w"]}, {"env": 4}, {"done": True, "command": None}])
    batch = make_batch([traj], ObjectiveConfig(env=EnvLossConfig(targets="full_observation")))
    spans = [range(*turn.observation_span) for turn in traj.turns if turn.observation_span]
    assert _true(batch.target_mask[0]) == [i for span in spans for i in span]
    assert not (batch.target_mask & batch.action_mask).any()
    assert batch.obs_count[0] == 2 + 3 + 4  # Z counts observation content only


def test_infra_error_and_empty_rollouts_keep_a_row_with_empty_masks():
    ok = trajectory([{"env": 3}], task_id="t", reward=1.0)
    infra = trajectory([{"env": 3}], task_id="t", outcome="infra_error")
    empty = trajectory([], prompt=0, task_id="t")
    batch = make_batch([ok, ok, infra, empty])
    assert batch.valid.tolist() == [True, True, False, True]
    assert batch.n_seqs == 3
    for i in (2, 3):
        assert not (batch.action_mask[i] | batch.env_mask[i] | batch.warning_mask[i] | batch.target_mask[i]).any()
    assert batch.advantages[2] == 0
    assert batch.attention_mask[3].tolist() == [1] + [0] * (batch.input_ids.shape[1] - 1)


def test_micro_batches_group_rows_longest_first_and_keep_the_step_denominators_and_stats():
    batch = make_batch(standard_trajectories())
    lengths = batch.attention_mask.sum(1)
    parts, rows = batch.micro_batches(4), batch.micro_batch_rows(4)
    assert [len(p) for p in parts] == [4, 2] and [len(r) for r in rows] == [4, 2]
    assert sorted(torch.cat(rows).tolist()) == list(range(len(batch)))  # every row once
    assert min(lengths[rows[0]]) >= max(lengths[rows[1]])  # the longest rows together
    assert all(p.n_seqs == batch.n_seqs and p.n_action_tokens == batch.n_action_tokens for p in parts)
    assert parts[1].stats is batch.stats
    for part, index in zip(parts, rows):
        length = int(lengths[index].max())  # each part is cut to its longest row
        assert part.input_ids.shape[1] == length and not batch.attention_mask[index, length:].any()
        assert torch.equal(part.target_mask, batch.target_mask[index, :length])
        assert torch.equal(part.advantages, batch.advantages[index])
        assert torch.equal(part.group_ids, batch.group_ids[index])
    padded = sum(p.input_ids.numel() for p in parts)
    consecutive = sum(int(lengths[i : i + 4].max()) * len(lengths[i : i + 4]) for i in range(0, len(batch), 4))
    assert padded < consecutive  # the standard rollouts are not in length order


def test_explicit_group_ids_and_advantages_are_kept():
    trajs = standard_trajectories()[:2]
    batch = collate(trajs, [0.5, -0.5], ObjectiveConfig(), PAD, group_ids=[7, 9])
    assert batch.group_ids.tolist() == [7, 9] and batch.advantages.tolist() == [0.5, -0.5]


def test_the_temperature_comes_from_the_trajectories_and_a_mix_is_refused():
    trajs = standard_trajectories()
    for traj in trajs:
        traj.temperature = 0.7
    trajs[0].temperature = None  # an expert transcript among the rollouts: no sampling temperature of its own
    assert collate(trajs, [0.0] * 6, ObjectiveConfig(), PAD).temperature == 0.7
    assert collate(trajs, [0.0] * 6, ObjectiveConfig(), PAD, temperature=1.0).temperature == 1.0  # fixed-τ scoring
    assert collate(trajs[:1], [0.0], ObjectiveConfig(), PAD).temperature == 1.0  # none sampled: τ = 1
    trajs[1].temperature = 0.6
    with pytest.raises(ValueError, match=r"^rollouts sampled at different temperatures \(0.6, 0.7\)") as err:
        collate(trajs, [0.0] * 6, ObjectiveConfig(), PAD)
    assert "\n" not in str(err.value)
