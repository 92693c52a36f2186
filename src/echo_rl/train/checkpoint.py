"""Atomic, self-validating checkpoints.

A checkpoint is a directory ``RUN/checkpoints/step-N/`` that is also a Hugging Face model directory::

    config.json, model.safetensors, generation_config.json   model (save_pretrained, safetensors; under FSDP2
                                                              the full fp32 state gathered from the shards)
    adapter_config.json, adapter_model.safetensors            instead, with LoRA: the adapters (peft), the
                                                              base model's path in adapter_config.json
    tokenizer.json, tokenizer_config.json, …                  tokenizer (save_pretrained)
    optimizer.pt, scheduler.pt                                optimizer state keyed by parameter name (any
                                                              parallel mode and world size resumes from it),
                                                              LR-scheduler state
    rng.pt                                                    python / numpy / torch RNG states
    trainer_state.json                                        step, sampler position, best score, …
    COMPLETE                                                  manifest {file: size}, written last

It is written into a hidden temporary directory, every file fsynced, ``COMPLETE`` written last, then the
directory is renamed into place and its parent fsynced. A checkpoint is valid only if ``COMPLETE`` exists
and every file it lists has the listed size, so a crash at any point never leaves one that loads as valid.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from echo_rl.errors import UserError
from echo_rl.rundir import atomic_write_text

COMPLETE = "COMPLETE"
OPTIMIZER = "optimizer.pt"
STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def capture_rng() -> dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA when present) RNG states."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> dict[str, int]:
    """fsync every file under ``root`` and return ``{relative path: size}``."""
    manifest = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        manifest[str(path.relative_to(root))] = path.stat().st_size
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(directory)
    return manifest


def save_checkpoint(
    directory: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer_state: dict[str, Any] | None,
    scheduler: Any | None,
    state: dict[str, Any],
    model_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Atomically write checkpoint ``directory/step-N`` (replacing an older one of the same step) and return
    its path. ``state`` is JSON-serialisable trainer state (sampler position, best score, …);
    ``model_state`` the weights to write instead of ``model``'s own (gathered FSDP2 shards)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=directory))
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar through the run's progress display
    try:
        model.save_pretrained(tmp, safe_serialization=True, state_dict=model_state)
        tokenizer.save_pretrained(tmp)
        if optimizer_state is not None:
            torch.save(optimizer_state, tmp / OPTIMIZER)
        if scheduler is not None:
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(capture_rng(), tmp / "rng.pt")
        (tmp / STATE).write_text(json.dumps({"step": step, **state}, indent=1))
        manifest = _fsync_tree(tmp)
        atomic_write_text(tmp / COMPLETE, json.dumps(manifest, indent=1))
        if final.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=directory))
            final.rename(trash / final.name)
            shutil.rmtree(trash)
        tmp.rename(final)
        _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return final


def is_complete(path: Path) -> bool:
    """True when ``path`` holds a fully written checkpoint (see module docstring)."""
    marker = path / COMPLETE
    if not marker.is_file():
        return False
    try:
        manifest = json.loads(marker.read_text())
    except (json.JSONDecodeError, OSError):
        return False
    return all((path / name).is_file() and (path / name).stat().st_size == size for name, size in manifest.items())


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``directory`` as ``(step, path)``, oldest first; others are ignored."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and is_complete(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: Path) -> Path | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1][1] if checkpoints else None


def remove_partial(directory: Path) -> list[Path]:
    """Delete leftovers of interrupted writes (hidden temp dirs, step dirs without a valid COMPLETE)."""
    removed = []
    if directory.is_dir():
        for path in directory.iterdir():
            partial = path.name.startswith(".step-") or (_STEP_DIR.match(path.name) and not is_complete(path))
            if partial and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def prune_checkpoints(directory: Path, keep: int, protect: set[int] = frozenset()) -> None:
    """Keep the newest ``keep`` complete checkpoints and those whose step is in ``protect``."""
    checkpoints = list_checkpoints(directory)
    for step, path in checkpoints[: max(len(checkpoints) - keep, 0)]:
        if step not in protect:
            shutil.rmtree(path)


def read_state(path: Path) -> dict[str, Any]:
    """The trainer state of a complete checkpoint; a one-line UserError for anything else."""
    if not is_complete(path):
        raise UserError("not a complete checkpoint (no valid COMPLETE marker)", where=str(path))
    return json.loads((path / STATE).read_text())


def load_training_state(path: Path, scheduler: Any | None) -> dict[str, Any]:
    """Restore scheduler and RNG states from checkpoint ``path``; return its trainer state. The model
    weights are loaded by the model loader from the same directory, the optimizer state is
    :func:`read_optimizer_state`'s."""
    state = read_state(path)
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    restore_rng(torch.load(path / "rng.pt", weights_only=False))
    return state


def read_optimizer_state(path: Path) -> dict[str, Any]:
    """The optimizer state saved in checkpoint ``path``."""
    return torch.load(path / OPTIMIZER, weights_only=False)
