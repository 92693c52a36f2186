"""Everything a train / sft / eval command sets up before its loop, checked before anything is written.

:func:`open_session` validates in this order, each problem a one-line :class:`UserError` with nothing
written to ``--out``: the output directory (an existing run needs ``--resume``), the logging sinks, the
sampling engine (vLLM installed, ``policy.vllm`` consistent), the tasks (missing directory, empty split,
task the backend cannot run), the model (not a checkpoint, an incomplete checkpoint, a run without a
checkpoint) and its tokenizer (no chat template, not byte-exact).
Only then does rank 0 create the run directory, write ``config.yaml``, drop what a killed predecessor
left (metrics past its last checkpoint, partial checkpoints, sandboxes of the run's label).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from echo_rl.config import RunConfig
from echo_rl.configfile import dump_config
from echo_rl.errors import UserError
from echo_rl.eval.evaluate import EnvCESet, Evaluator
from echo_rl.eval.heldout import load_or_record
from echo_rl.harness.chat import ChatFormat
from echo_rl.models.load import load_policy_model, resolve_checkpoint
from echo_rl.models.lora import add_adapters, is_adapter_checkpoint, require_peft
from echo_rl.rollout.policy.base import Policy
from echo_rl.rollout.policy.vllm import check_engine
from echo_rl.rundir import RunDir, atomic_write_text
from echo_rl.sandbox.gc import collect_garbage
from echo_rl.seeding import derive_seed
from echo_rl.tasks.task import Task
from echo_rl.train.checkpoint import (
    STATE,
    latest_checkpoint,
    list_checkpoints,
    read_state,
    remove_partial,
)
from echo_rl.train.data import load_task_splits
from echo_rl.distributed import DistContext, barrier, init_distributed
from echo_rl.train.parallel import TrainedModel, parallelize, resolve_mode
from echo_rl.train.sinks import MetricsLogger, check_logging

log = logging.getLogger(__name__)
# config fields a resumed run may change (checkpoints are the same under every parallel mode)
RESUMABLE = {"train": {"steps"}, "parallel": {"mode", "activation_checkpointing"}}


def run_label(out: Path) -> str:
    """The sandbox label of the run writing into ``out`` (stable across resumes)."""
    return "run-" + hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:12]


def resolve_model_spec(spec: str) -> str:
    """``spec`` itself, or for a run directory its latest complete checkpoint. A checkpoint directory of
    ours must be complete."""
    path = Path(spec).expanduser()
    if (path / "config.yaml").is_file() and (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path / "checkpoints")
        if latest is None:
            raise UserError("run directory has no complete checkpoint", where=spec)
        return str(latest)
    if (path / STATE).is_file():
        read_state(path)  # raises for an incomplete checkpoint
    return spec


def _changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_fields(a, b, f"{prefix}{key}.")
        elif a != b and key not in RESUMABLE.get(prefix.rstrip("."), set()):
            changed.append(prefix + key)
    return changed


@dataclass
class Session:
    cfg: RunConfig
    ctx: DistContext
    run: RunDir
    label: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    chat: ChatFormat
    model_path: str
    splits: dict[str, list[Task]]
    resume_from: Path | None = None
    logger: MetricsLogger | None = field(default=None, repr=False)
    initial_model: str = ""  # the model spec the run started from (a resumed run's reference model)
    trained: TrainedModel | None = None  # training sessions: the module the updates train (``model``: its full view)

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def log(self, record: dict[str, Any]) -> None:
        if self.logger is not None:
            self.logger.log(record)

    def evaluator(self, policy: Policy) -> Evaluator:
        """An evaluator over the run's splits, with held-out env CE on the fixed transcript file
        (``eval.heldout_transcripts``, default ``RUN/eval/heldout_transcripts.jsonl``; recorded by rank 0 on
        first use from the held-out tasks, validation tasks when there are none) and, when
        ``eval.validation_transcripts`` is set, env CE on that file too (recorded from validation or test tasks)."""
        heldout = self._env_ce_set(Path(self.cfg.eval.heldout_transcripts or self.run.evals / "heldout_transcripts.jsonl"),
                                   self.splits.get("heldout") or self.splits.get("validation") or [])
        seen = self.cfg.eval.validation_transcripts
        validation = self._env_ce_set(Path(seen), self.splits.get("validation") or self.splits.get("test") or []) \
            if seen else None
        return Evaluator(self.cfg, policy, self.chat, self.splits, label=self.label, ctx=self.ctx, env_ce=heldout,
                         env_ce_validation=validation)

    def _env_ce_set(self, path: Path, source: list[Task]) -> EnvCESet:
        """The transcripts of ``path`` (recorded from ``source`` by rank 0 if missing), or why there are none."""
        known = [task for tasks in self.splits.values() for task in tasks]
        if self.ctx.is_main:
            transcripts, skipped = load_or_record(path, source, self.chat, self.cfg, self.label, known=known)
        barrier(self.ctx)
        if not self.ctx.is_main:
            transcripts, skipped = load_or_record(path, source, self.chat, self.cfg, self.label, known=known,
                                                  record=False)
        if skipped:
            log.warning("env CE on %s is not measured: %s", path, skipped)
        return EnvCESet(self.model, transcripts, path, self.pad_id, skipped)

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()


def _prepare_out(run: RunDir, cfg: RunConfig, resume: bool) -> Path | None:
    """Check ``--out`` against ``--resume``; return the checkpoint to resume from (None: start afresh)."""
    exists = run.metrics.exists() or bool(list_checkpoints(run.checkpoints))
    if exists and not resume:
        raise UserError("already holds a run: pass --resume to continue it, or choose another --out", where=str(run.root))
    if resume and run.config.is_file():
        changed = _changed_fields(yaml.safe_load(run.config.read_text()) or {}, cfg.model_dump(mode="json"))
        if changed:
            raise UserError(f"cannot resume with a different config ({', '.join(changed[:3])} changed)", where=str(run.config))
    return latest_checkpoint(run.checkpoints) if resume else None


def _reset_to_checkpoint(run: RunDir, step: int) -> None:
    """Drop the metrics lines and evaluation results past ``step`` (written by a killed run after its last
    checkpoint; ``step`` -1 drops all)."""
    if run.metrics.exists():
        kept = [line for line in run.metrics.read_text().splitlines(keepends=True) if _step_of(line) <= step]
        atomic_write_text(run.metrics, "".join(kept))
    for result in run.evals.glob("step-*.json"):
        if int(result.stem.partition("-")[2]) > step:
            result.unlink()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 1 << 62  # a torn line: dropped


def open_session(cfg: RunConfig, out: Path, *, resume: bool, splits: tuple[str, ...], model: str | None = None,
                 training: bool = False) -> Session:
    """Validate everything (module docstring), then set up the run directory; ``model`` overrides
    ``cfg.policy.model`` (a resumed run loads its checkpoint instead). A ``training`` session also checks
    ``parallel.mode`` (and peft for ``policy.lora``) first, adds LoRA adapters to a full checkpoint, and sets
    the model up for the mode (:func:`echo_rl.train.parallel.parallelize`)."""
    ctx = init_distributed(cfg.policy.device)
    lora = training and cfg.policy.lora.enabled
    if training:
        resolve_mode(cfg, ctx)
    if lora:
        require_peft()
    if cfg.policy.threads is not None:
        torch.set_num_threads(cfg.policy.threads)
    run = RunDir(Path(out))
    resume_from = _prepare_out(run, cfg, resume)
    check_logging(cfg.logging)
    if cfg.policy.backend == "vllm":
        check_engine(cfg)
    task_splits = load_task_splits(cfg, splits)
    spec = str(resume_from) if resume_from else resolve_model_spec(model or cfg.policy.model)
    # float32 master weights whatever policy.dtype says: that is the compute precision (train/precision.py)
    policy_model, tokenizer = load_policy_model(spec, dtype="float32", device=str(ctx.device), trainable_adapters=lora)
    if lora and not is_adapter_checkpoint(resolve_checkpoint(spec)):
        seed = derive_seed(cfg.seed, "lora")
        policy_model = add_adapters(policy_model, cfg.policy.lora, resolve_checkpoint(spec), seed)
    trained = parallelize(policy_model, cfg, ctx) if training else None
    chat = ChatFormat.from_config(tokenizer, cfg.harness)
    label = run_label(run.root)
    logger = None
    if ctx.is_main:
        RunDir.create(run.root)
        atomic_write_text(run.config, dump_config(cfg))
        if resume:
            _reset_to_checkpoint(run, read_state(resume_from)["step"] if resume_from else -1)
        remove_partial(run.checkpoints)
        asyncio.run(collect_garbage(label, containers=cfg.sandbox.backend == "container", engine_url=cfg.sandbox.engine_url))
        logger = MetricsLogger(run, cfg.logging, cfg.model_dump(mode="json"), cfg.name)
    barrier(ctx)
    full = trained.full if trained else policy_model
    return Session(cfg, ctx, run, label, full, tokenizer, chat, spec, task_splits, resume_from, logger,
                   initial_model=model or cfg.policy.model, trained=trained)
