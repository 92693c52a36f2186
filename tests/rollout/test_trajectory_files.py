"""Trajectories save to jsonl/parquet and reload exactly; the viewer prints every token by role."""

import json

import pytest
from rich.console import Console
from rollout_helpers import ScriptedPolicy, config

from echo_rl.errors import UserError
from echo_rl.harness.render import render_action
from echo_rl.rollout.episode import EpisodeRequest, EpisodeRunner, run_episodes
from echo_rl.rollout.trajectory import Trajectory, Turn, load_trajectories, save_trajectories
from echo_rl.roles import Role
from echo_rl.rollout.view import ROLE_STYLES, render_trajectory, role_runs
from echo_rl.tasks.families import generate


@pytest.fixture(scope="module")
def trajectories(chat):
    task = generate("json_field", 3)
    script = [render_action("qwen_xml", c, "step") for c in task.reference_commands] + [
        "bad",
        render_action("qwen_xml", None, "ok"),
    ]
    policy = ScriptedPolicy(chat, {task.instruction: script})
    return run_episodes(EpisodeRunner(policy, chat, config(), label="test-files"), [EpisodeRequest(task)])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_save_and_reload_exactly(tmp_path, trajectories, suffix):
    handmade = Trajectory(
        "t",
        [1, 2, 3],
        [0, 1, 4],
        [0.0, -1.25e-9, 0.0],
        [Turn((1, 2), "x", warnings=["w"])],
        reward=0.5,
        meta={"nested": {"a": [1, None]}},
        timings={"total_s": 1.5},
    )
    path = tmp_path / f"rollouts{suffix}"
    save_trajectories(path, [*trajectories, handmade])
    assert load_trajectories(path) == [*trajectories, handmade]


def test_episodes_record_their_sampling_and_older_files_load_it_from_meta(tmp_path, trajectories):
    (trajectory,) = trajectories
    assert trajectory.temperature == config().sampling.temperature and trajectory.exact_logprobs
    assert "temperature" not in trajectory.meta and "sampler_logprobs" not in trajectory.meta
    old = trajectory.to_dict()  # as files were written before the two fields existed
    del old["temperature"], old["exact_logprobs"]
    old["meta"] = {**old["meta"], "temperature": 0.6, "sampler_logprobs": False}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n")
    (loaded,) = load_trajectories(path)
    assert (loaded.temperature, loaded.exact_logprobs) == (0.6, False)
    assert loaded.meta == trajectory.meta and loaded.token_ids == trajectory.token_ids
    expert = Trajectory("e", [1], [0], [0.0])
    assert (expert.temperature, expert.exact_logprobs) == (None, False)  # no policy sampled it


def test_extra_keys_are_ignored_and_bad_files_are_user_errors(tmp_path, trajectories):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "decoded", ' + json.dumps(trajectories[0].to_dict())[1:] + "\n")
    assert load_trajectories(path) == trajectories[:1]
    with pytest.raises(UserError, match="no such trajectory file"):
        load_trajectories(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="not a trajectory file"):
        load_trajectories(tmp_path / "bad.jsonl")


def test_viewer_prints_the_decoded_transcript_by_role(chat, trajectories):
    (trajectory,) = trajectories
    assert trajectory.outcome == "solved"
    runs = list(role_runs(trajectory, chat.tokenizer))
    assert "".join(text for _, text in runs) == chat.decode(trajectory.token_ids)
    assert {role for role, _ in runs} == set(Role)
    assert all(a != b for (a, _), (b, _) in zip(runs, runs[1:], strict=False))
    header, body = render_trajectory(trajectory, chat.tokenizer).renderables
    assert body.plain == chat.decode(trajectory.token_ids)
    assert [(span.style, body.plain[span.start : span.end]) for span in body.spans] == [
        (ROLE_STYLES[role], text) for role, text in runs
    ]
    console = Console(record=True, width=200)
    console.print(header)
    assert "outcome=solved" in console.export_text()
