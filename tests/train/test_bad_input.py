"""Bad input to train / sft / eval: one line, exit 2, before any work, nothing written into --out."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import pytest
from train_configs import make_config

from echo_rl.cli import main
from echo_rl.configfile import dump_config
from echo_rl.models.load import resolve_checkpoint


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(dump_config(make_config()))
    return path


@pytest.fixture
def no_template_model(tmp_path):
    """A copy of the tiny checkpoint whose tokenizer has no chat template."""
    model = tmp_path / "no-template"
    shutil.copytree(resolve_checkpoint("tiny"), model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    return model


def _fails(capsys, args, expected):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("echo-rl: error: "), err
    assert expected in err, err


@pytest.mark.parametrize("command", ["train", "sft", "eval"])
def test_each_bad_input_is_one_line_and_writes_nothing(command, config, tmp_path, capsys, no_template_model):
    out = tmp_path / "out"
    not_a_checkpoint = tmp_path / "empty"
    not_a_checkpoint.mkdir()
    cases = [
        (["tasks.train=/nonexistent/tasks", "tasks.validation=/nonexistent/tasks"], "/nonexistent/tasks"),
        ([f"policy.model={not_a_checkpoint}"], "not a checkpoint directory"),
        (["train.bogus=1"], "train.bogus: no such field"),
        ([f"policy.model={no_template_model}"], "tokenizer has no chat template"),
    ]
    if importlib.util.find_spec("wandb") is None:
        cases.append((["logging.wandb_project=demo"], "wandb is not installed"))
    for overrides, expected in cases:
        _fails(capsys, [command, str(config), *overrides, "--out", str(out)], expected)
        assert not out.exists()


def test_an_existing_run_needs_resume_and_a_partial_checkpoint_is_refused(config, tmp_path, capsys, sft_run):
    _fails(capsys, ["train", str(config), "--out", str(sft_run)], "already holds a run: pass --resume")
    partial = tmp_path / "partial"
    shutil.copytree(sft_run / "checkpoints" / "step-000030", partial)
    (partial / "COMPLETE").unlink()
    out = tmp_path / "out"
    _fails(capsys, ["train", str(config), f"policy.model={partial}", "--out", str(out)], "not a complete checkpoint")
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "sft"])
def test_bad_parallel_and_lora_settings_are_one_line_and_write_nothing(command, config, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    for overrides, expected in [
        (["parallel.mode=fsdp2"], "parallel.mode=fsdp2 needs torchrun"),
        (["parallel.mode=ddp"], "parallel.mode=ddp needs torchrun"),
        (["parallel.mode=zero3"], "parallel.mode: Input should be"),
        (["parallel.mode=fsdp2", "objective.grad_probe_every=2"], "parallel.mode=fsdp2 cannot measure per-term"),
    ]:
        _fails(capsys, [command, str(config), *overrides, "--out", str(out)], expected)
        assert not out.exists()
    monkeypatch.setitem(sys.modules, "peft", None)  # as if peft were not installed: importing it fails
    _fails(capsys, [command, str(config), "policy.lora.enabled=true", "--out", str(out)],
           "policy.lora.enabled: LoRA needs peft")
    assert not out.exists()
