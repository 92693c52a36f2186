import pytest

from echo_rl.config import RunConfig
from echo_rl.configfile import dump_config, load_config, load_config_args
from echo_rl.errors import UserError


def test_defaults_reproduce_the_paper_recipe():
    cfg = RunConfig()
    assert cfg.optim.lr == 1e-6
    assert (cfg.objective.clip_eps_low, cfg.objective.clip_eps_high) == (0.2, 0.2)
    assert cfg.objective.env.lam == 0.05
    assert cfg.objective.env.targets == "env_only"
    assert cfg.objective.env.normalization == "full_observation_tokens"
    assert cfg.objective.kl_coef == 0.0
    assert cfg.optim.grad_clip == 0.2 and cfg.optim.warmup_steps == 20
    assert (cfg.episode.max_turns, cfg.episode.max_context_tokens, cfg.episode.max_turn_tokens) == (16, 16384, 2048)
    assert (cfg.episode.agent_timeout_s, cfg.episode.verifier_timeout_s) == (600, 120)
    assert cfg.train.rollouts_per_task == 16 and cfg.train.tasks_per_step == 16
    assert (cfg.sampling.temperature, cfg.sampling.eval_temperature) == (0.8, 0.6)
    assert cfg.harness.max_output_chars == 50_000 and cfg.sandbox.command_timeout_s == 30


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective:\n  algorithm: grpo\n  env:\n    lam: 0.01\n")
    cfg = load_config(path, ["objective.env.lam=0.2", "train.steps=3", "optim.betas=[0.8, 0.9]"])
    assert cfg.objective.algorithm == "grpo"
    assert cfg.objective.env.lam == 0.2
    assert cfg.train.steps == 3
    assert cfg.optim.betas == (0.8, 0.9)


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, ["objective.env.schedule.kind=step_decay", "name=x"])
    path = tmp_path / "dump.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "text, overrides, expected",
    [
        ("objective:\n  env:\n    lamx: 1\n", [], "c.yaml: objective.env.lamx: no such field"),
        ("optim:\n  lr: fast\n", [], "c.yaml: optim.lr: Input should be a valid number"),
        ("optim:\n  lr: -1\n", [], "c.yaml: optim.lr: Input should be greater than 0"),
        ("objective: [1, 2\n", [], "c.yaml: line"),
        ("- 1\n", [], "c.yaml: top level must be a mapping"),
        ("{}\n", ["train.steps"], "expected key.sub=value"),
        ("{}\n", ["objective.algorithm=ppo"], "objective.algorithm: Input should be 'grpo', 'echo' or 'env_only'"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, text, overrides, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_config(path, overrides)
    message = str(err.value)
    assert "\n" not in message
    assert expected in message.replace(str(tmp_path) + "/", "")


def test_config_args_split_path_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\n")
    assert load_config_args([str(path), "train.steps=2"]).seed == 3
    assert load_config_args(["train.steps=2"]).train.steps == 2
    with pytest.raises(UserError, match="unexpected argument 'oops'"):
        load_config_args([str(path), "oops"])
