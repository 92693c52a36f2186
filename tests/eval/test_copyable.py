"""Copyable env tokens: content the transcript already showed, not format every transcript shares; and the
held-out env CE over them, equal to the per-token log-probs it claims to average."""

import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "objective"))
from objective_helpers import PAD, tiny_model  # noqa: E402

from echo_rl.config import RunConfig
from echo_rl.distributed import DistContext
from echo_rl.eval.copyable import copyable_masks
from echo_rl.eval.heldout import heldout_env_ce
from echo_rl.objective import full_logits_logprobs
from echo_rl.objective.batch import collate
from echo_rl.roles import Role
from echo_rl.rollout.trajectory import Trajectory

FORMAT = [90, 91, 92, 93, 94]  # a line every observation ends with, like the harness's exit-code line


def _transcript(index: int) -> tuple[Trajectory, list[int]]:
    """Prompt; an action naming six content tokens; an output showing them again, then the format line; a
    second action; an output of fresh content, then the format line. Returns it and the copyable positions:
    the output's 5th and 6th shown-again tokens, whose 5-grams the action holds."""
    rng = random.Random(index)
    content = [rng.randrange(100, 300) for _ in range(6)]
    fresh = [rng.randrange(100, 300) for _ in range(4)]
    parts = [(Role.PROMPT, [1, 2, 3, 4]), (Role.ACTION, content), (Role.TEMPLATE, [5]), (Role.ENV, content + FORMAT),
             (Role.ACTION, [6, 7]), (Role.TEMPLATE, [5]), (Role.ENV, fresh + FORMAT)]
    ids = [i for _, part in parts for i in part]
    roles = [role for role, part in parts for _ in part]
    start = 4 + 6 + 1  # the first output
    return Trajectory(f"t{index}", ids, [int(r) for r in roles], [0.0] * len(ids)), [start + 4, start + 5]


def test_copyable_tokens_are_content_shown_before_not_shared_format():
    pairs = [_transcript(i) for i in range(12)]
    masks = copyable_masks([t for t, _ in pairs])
    for (traj, expected), mask in zip(pairs, masks):
        assert [i for i, flag in enumerate(mask) if flag] == expected
        # the format line's second showing repeats an earlier 5-gram too, but every transcript has it
        second_format = len(traj.token_ids) - 1
        assert traj.roles[second_format] == Role.ENV and not mask[second_format]


def test_format_shared_by_few_transcripts_counts_as_content():
    pairs = [_transcript(i) for i in range(12)]
    masks = copyable_masks([t for t, _ in pairs], max_share=1.01)  # every n-gram rare enough
    last = len(pairs[0][0].token_ids) - 1
    assert all(mask[last] for mask in masks)


def test_heldout_env_ce_over_copyable_tokens_is_their_mean_nll():
    model = tiny_model()
    transcripts = [_transcript(i)[0] for i in range(12)]
    cfg = RunConfig.model_validate({"train": {"micro_batch_size": 5}})
    got = heldout_env_ce(model, transcripts, cfg, PAD, DistContext(), Path("held-out.jsonl"))
    batch = collate(transcripts, [0.0] * len(transcripts), cfg.objective, PAD, temperature=1.0)
    with torch.no_grad():
        nll = -full_logits_logprobs(model, batch.input_ids, batch.attention_mask).logprobs
    mask = torch.zeros_like(batch.env_mask)
    for row, flags in enumerate(copyable_masks(transcripts)):
        mask[row, : len(flags)] = torch.tensor(flags)
    assert got.copyable_tokens == 24 == int(mask.sum())
    assert got.copyable == pytest.approx(float((nll * mask).sum() / mask.sum()), rel=1e-5)
    assert got.value == pytest.approx(float((nll * batch.env_mask).sum() / batch.env_mask.sum()), rel=1e-5)
    assert got.copyable != pytest.approx(got.value, rel=1e-3)


def test_in_a_small_set_content_of_one_transcript_alone_is_copyable():
    pairs = [_transcript(i) for i in range(4)]  # 10% of 4 transcripts is under one
    masks = copyable_masks([t for t, _ in pairs])
    assert [[i for i, flag in enumerate(mask) if flag] for mask in masks] == [expected for _, expected in pairs]
