"""LoRA through peft (``policy.lora``, issue 16 item 4): RL trains only the adapters, the checkpoint is an
adapter folder that peft loads, whose merged weights compute the adapter model's logits, that
``policy.model=RUN`` evaluates from, and that a resumed run continues exactly."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from train_configs import rl_config
from transformers import AutoModelForCausalLM

from echo_rl.models.load import load_policy_model
from echo_rl.rundir import RunDir
from echo_rl.train.checkpoint import latest_checkpoint
from echo_rl.train.session import resolve_model_spec
from echo_rl.train.trainer import train

LORA = ("policy.lora.enabled=true", "policy.lora.rank=4", "policy.lora.target_modules=[q_proj,v_proj,down_proj]",
        "train.steps=2", "optim.lr=1e-3")
TIMING = {"time/rollout_s", "time/step_s", "time/tokens_per_s"}


def _train_records(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(run).read_metrics() if r["kind"] == "train"]


@pytest.mark.slow
def test_lora_trains_adapters_only_and_its_checkpoint_loads_merged_and_resumes(sft_run, tmp_path):
    whole = train(rl_config(sft_run, "echo", *LORA), tmp_path / "whole")
    checkpoint = latest_checkpoint(whole / "checkpoints")
    files = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "optimizer.pt"} <= files
    assert "model.safetensors" not in files
    base_path = json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
    sft_checkpoint = latest_checkpoint(sft_run / "checkpoints")
    assert base_path == str(sft_checkpoint.resolve())

    adapters = load_file(checkpoint / "adapter_model.safetensors")
    assert adapters and all("lora_" in name for name in adapters)
    assert any(float(t.abs().max()) > 0 for name, t in adapters.items() if "lora_B" in name), "B moved off zero"
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft_checkpoint), checkpoint)
    base = AutoModelForCausalLM.from_pretrained(sft_checkpoint).state_dict()
    for name, value in adapted.get_base_model().state_dict().items():  # every base weight as it was
        if "lora_" not in name:
            assert torch.equal(value, base[name.replace(".base_layer", "")]), name

    merged, _ = load_policy_model(resolve_model_spec(str(whole)))  # policy.model=RUN: adapters merged in
    assert not hasattr(merged, "peft_config")
    ids = torch.randint(0, 600, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (adapted(input_ids=ids).logits - merged(input_ids=ids).logits).abs().max()
    print(f"largest logit difference, adapters vs merged: {float(difference):.2g}")
    assert difference < 1e-4

    resumed = tmp_path / "resumed"
    train(rl_config(sft_run, "echo", *LORA, "train.steps=1"), resumed)
    train(rl_config(sft_run, "echo", *LORA), resumed, resume=True)
    assert _train_records(resumed) == _train_records(whole)
    final = load_file(latest_checkpoint(resumed / "checkpoints") / "adapter_model.safetensors")
    assert all(torch.equal(final[name], adapters[name]) for name in adapters)
