"""One sampler factory and one sandbox factory (issue 19.3): every ``policy.*`` setting reaches the sampler
on every path — training, SFT evaluation, ``echo-rl eval``, ``echo-rl rollout``, the demo — because every
path builds it with :func:`echo_rl.train.policy_sync.make_policy` (or ``load_policy``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from train_configs import make_config

from echo_rl.cli import main
from echo_rl.configfile import dump_config
from echo_rl.errors import UserError
from echo_rl.models.load import load_policy_model
from echo_rl.rollout.policy.hf import TransformersPolicy
from echo_rl.rollout.policy.openai import OpenAIPolicy
from echo_rl.train.policy_sync import load_policy, make_policy
from echo_rl.train.session import open_session
from echo_rl.train.trainer import Trainer

SRC = Path(__file__).parents[2] / "src" / "echo_rl"
HANDWRITTEN = Path(__file__).parents[1] / "fixtures" / "harbor-handwritten"
MIB = 2**20


def _constructions(names: set[str]) -> dict[str, set[str]]:
    """``{module path under src/echo_rl: the names of ``names`` it calls}``."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in names:
                    found.setdefault(str(path.relative_to(SRC)), set()).add(name)
    return found


def test_only_the_factories_construct_samplers_and_sandboxes():
    samplers = _constructions({"TransformersPolicy", "OpenAIPolicy", "VLLMPolicy"})
    assert set(samplers) == {"train/policy_sync.py"}, samplers
    sandboxes = _constructions({"LocalSandbox", "ContainerSandbox"})
    # the container backend's own network-less twin of itself aside
    assert set(sandboxes) == {"sandbox/__init__.py", "sandbox/container.py"}, sandboxes
    factory_users = _constructions({"make_policy", "load_policy"})
    for entry in ("train/trainer.py", "train/sft.py", "train/eval_job.py", "cli/rollout.py"):
        assert entry in factory_users, f"{entry} does not build its sampler with the factory"


@pytest.fixture
def built(monkeypatch) -> list[TransformersPolicy]:
    """Every TransformersPolicy constructed while the test runs (the real objects, recorded)."""
    instances: list[TransformersPolicy] = []
    original = TransformersPolicy.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        instances.append(self)

    monkeypatch.setattr(TransformersPolicy, "__init__", recording)
    return instances


def test_make_policy_applies_the_transformers_settings_to_a_model_in_memory():
    cfg = make_config("policy.prefix_cache_mb=7", "policy.dtype=bfloat16", "seed=5")
    model, tokenizer = load_policy_model("tiny")  # float32 weights: sampling computes in policy.dtype
    policy = make_policy(cfg, model, tokenizer)
    assert policy.prefix_cache.max_bytes == 7 * MIB and policy.generator.initial_seed() == 5
    with policy.compute():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    loaded, _ = load_policy_model("tiny", dtype="bfloat16")  # weights already in policy.dtype: as they are
    with make_policy(cfg, loaded, tokenizer).compute():
        assert not torch.is_autocast_enabled("cpu")


def test_the_openai_settings_reach_the_sampler_and_it_cannot_train(monkeypatch):
    monkeypatch.setenv("ECHO_RL_TEST_KEY", "secret")
    cfg = make_config("policy.backend=openai", "policy.endpoint=http://127.0.0.1:9/v1", "policy.http_api=completions",
                      "policy.served_model_name=served", "policy.api_key_env=ECHO_RL_TEST_KEY",
                      "policy.request_timeout_s=3")
    policy, tokenizer = load_policy(cfg)
    assert isinstance(policy, OpenAIPolicy) and policy.url == "http://127.0.0.1:9/v1/completions"
    assert (policy.model_name, policy.api_key, policy.timeout_s) == ("served", "secret", 3.0)
    policy.close()
    with pytest.raises(UserError, match="policy.backend=openai cannot be trained"):
        make_policy(cfg, None, tokenizer, training=True)
    with pytest.raises(UserError, match="policy.endpoint: required"):
        make_policy(make_config("policy.backend=openai"), None, tokenizer)


def test_training_samples_with_the_configured_prefix_cache(tmp_path):
    session = open_session(make_config("policy.prefix_cache_mb=3"), tmp_path / "run", resume=False,
                           splits=("train",), training=True)
    try:
        assert Trainer(session).policy.prefix_cache.max_bytes == 3 * MIB
    finally:
        session.close()


def _config_file(tmp_path: Path, *overrides: str) -> str:
    path = tmp_path / "cfg.yaml"
    corpus = [f"tasks.train={HANDWRITTEN}", f"tasks.validation={HANDWRITTEN}", f"tasks.heldout={HANDWRITTEN}"]
    path.write_text(dump_config(make_config(*corpus, "eval.samples_per_task=1", "eval.greedy=false",
                                            "eval.splits=[validation]",
                                            *overrides)))
    return str(path)


@pytest.mark.parametrize("command", ["rollout", "eval"])
def test_the_cli_paths_sample_with_the_configured_prefix_cache(tmp_path, built, command):
    config = _config_file(tmp_path, "policy.prefix_cache_mb=3")
    if command == "rollout":
        args = ["rollout", "run", config, "--tasks", str(HANDWRITTEN / "greet"), "-n", "1"]
    else:
        args = ["eval", config]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert built and all(policy.prefix_cache.max_bytes == 3 * MIB for policy in built)
