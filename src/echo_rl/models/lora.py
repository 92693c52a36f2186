"""LoRA adapters through ``peft`` (extra ``lora``; ``policy.lora``).

    model = add_adapters(model, cfg.policy.lora, base_path)   # a peft model: only the adapters train
    model = load_adapters(base, adapter_dir, trainable=False)  # eval / sampling: adapters merged in

Each adapted linear layer computes W·x + (alpha/r)·B·A·x with the base W frozen; A, B (rank r) are the
trained parameters. The rollout policy samples from the adapter-wrapped model itself, which computes the
same function as the merged weights W + (alpha/r)·B·A. An adapter checkpoint is a folder that peft loads
(``adapter_config.json``, ``adapter_model.safetensors``); its ``base_model_name_or_path`` is the absolute path
of the base checkpoint, so that ``policy.model=RUN`` finds the base again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from echo_rl.config import LoraConfig
from echo_rl.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ADAPTER_CONFIG = "adapter_config.json"


def require_peft() -> None:
    """A one-line error when LoRA is asked for and ``peft`` is not installed."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise UserError("policy.lora.enabled: LoRA needs peft (pip install 'echo-rl[lora]')") from None


def is_adapter_checkpoint(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).is_file()


def base_model_path(adapter_dir: Path) -> str:
    """The base checkpoint an adapter folder was trained on (recorded in ``adapter_config.json``)."""
    base = json.loads((adapter_dir / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base:
        raise UserError("adapter_config.json names no base model (base_model_name_or_path)", where=str(adapter_dir))
    return str(base)


def add_adapters(model: PreTrainedModel, cfg: LoraConfig, base_path: Path, seed: int) -> PreTrainedModel:
    """``model`` with fresh LoRA adapters (A random from ``seed``, B = 0: the function is unchanged) on
    ``cfg.target_modules``; every other parameter frozen. ``base_path`` is recorded as the base model."""
    require_peft()
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    config = PeftLoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                            target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapted = get_peft_model(model, config)
    adapted.peft_config["default"].base_model_name_or_path = str(base_path.resolve())
    return adapted


def load_adapters(model: PreTrainedModel, adapter_dir: Path, *, trainable: bool) -> PreTrainedModel:
    """The base ``model`` with the adapters of ``adapter_dir``: trainable (a peft model, to continue training)
    or merged into the weights (a plain model, to evaluate or sample)."""
    require_peft()
    from peft import PeftModel

    adapted = PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
    return adapted if trainable else adapted.merge_and_unload()
