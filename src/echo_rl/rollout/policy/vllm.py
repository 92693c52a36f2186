"""The vLLM backend (EXPERIMENTAL until it has run on a GPU; extra ``vllm`` >= 0.10.2, CUDA only).

One engine per trainer process, colocated on the trainer's GPU (``policy.vllm``, see
:class:`echo_rl.config.VLLMConfig`):

- **memory**: the engine takes ``gpu_memory_utilization`` of the GPU; with ``enable_sleep_mode`` it
  :meth:`VLLMPolicy.sleep` s while the trainer updates (``LLM.sleep(level)``) and wakes in two steps around
  the weight sync (``wake_up(tags=["weights"])``, load, ``wake_up(tags=["kv_cache"])``);
- **torchrun**: under torchrun the engine uses ``distributed_executor_backend="external_launcher"``: it runs
  in the rank's own process and joins the process group torchrun set up (one engine per rank, tensor
  parallel size 1, as each rank samples its own tasks);
- **weights**: :meth:`VLLMPolicy.load_weights` pushes ``(checkpoint name, tensor)`` pairs in chunks of
  ``sync_chunk_mb`` through ``collective_rpc("echo_rl_load_weights", ...)``, a method of the worker
  extension :mod:`echo_rl.rollout.policy.vllm_worker` (named by its dotted path; no closures), then calls
  ``reset_prefix_cache()`` so that no rollout reuses keys and values computed with the old weights;
- **in-process**: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine core in the trainer's process
  (external_launcher requires it), so ``collective_rpc`` passes the tensors by reference, nothing pickled.

Log-probs: ``logprobs_mode="processed_logprobs"``, the log-softmax of the logits the token was drawn from,
after temperature and top-k/top-p (vLLM >= 0.10.2; ``logprobs_mode`` itself came in 0.10.0, where
"processed" still meant before temperature). Without truncation (``top_p`` 1, ``top_k`` 0, echo-rl's
default) that is exactly the recorded convention of :mod:`echo_rl.rollout.policy.base`,
log softmax(logits / T) over the full vocabulary (T = 1 when greedy). ``raw_logprobs`` would be
log softmax(logits), temperature left out, so it matches only at T = 1. With truncation the processed
values are those of the renormalised nucleus, larger than the full-vocabulary ones:
:meth:`VLLMPolicy.exact_logprobs` is then False and ``objective.tis_cap`` can correct the difference.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.rollout.policy.base import Generation, Policy, SamplingParams, per_prompt, prompt_seeds
from echo_rl.rollout.policy.vllm_worker import WORKER_EXTENSION

LOAD_METHOD = "echo_rl_load_weights"
MISSING = "policy.backend=vllm needs vLLM >= 0.10.2 (pip install 'echo-rl[vllm]', CUDA GPUs)"
NamedTensors = Iterable[tuple[str, torch.Tensor]]


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def engine_options(model_path: str, cfg: RunConfig, *, seed: int) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for this run (module docstring); one-line errors for
    combinations that cannot work."""
    vc = cfg.policy.vllm
    launcher = vc.external_launcher == "on" or (vc.external_launcher == "auto" and under_torchrun())
    if launcher and "RANK" not in os.environ:
        raise UserError("policy.vllm.external_launcher=on: needs torchrun (RANK, LOCAL_RANK, MASTER_ADDR unset)")
    if launcher and vc.tensor_parallel_size != 1:
        raise UserError("policy.vllm.tensor_parallel_size: must be 1 with external_launcher (ranks sample different tasks)")
    options: dict[str, Any] = {
        "model": model_path,
        "dtype": cfg.policy.dtype,
        "seed": seed,
        "gpu_memory_utilization": vc.gpu_memory_utilization,
        "enable_sleep_mode": vc.enable_sleep_mode,
        "tensor_parallel_size": vc.tensor_parallel_size,
        "max_model_len": vc.max_model_len or cfg.episode.max_context_tokens,
        "enforce_eager": vc.enforce_eager,
        "enable_prefix_caching": vc.enable_prefix_caching,
        "logprobs_mode": "processed_logprobs",
        "worker_extension_cls": WORKER_EXTENSION,
    }
    if launcher:
        options["distributed_executor_backend"] = "external_launcher"
    if vc.max_num_seqs is not None:
        options["max_num_seqs"] = vc.max_num_seqs
    return options


def check_engine(cfg: RunConfig) -> None:
    """Fail before anything is written (one line) when this run's engine cannot start: vLLM is not
    installed, or ``policy.vllm`` asks for what cannot work."""
    engine_options(cfg.policy.model, cfg, seed=cfg.seed)
    if importlib.util.find_spec("vllm") is None:
        raise UserError(MISSING)


def weight_chunks(named: NamedTensors, max_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """``named`` in order, cut into lists of at most ``max_bytes`` of tensor data (a larger tensor alone)."""
    chunk: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in named:
        nbytes = tensor.numel() * tensor.element_size()
        if chunk and size + nbytes > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append((name, tensor))
        size += nbytes
    if chunk:
        yield chunk


def replace_weights(
    llm: Any, named: NamedTensors, *, asleep: bool, max_bytes: int, dtype: torch.dtype, device: torch.device
) -> int:
    """Load ``named`` into every worker of ``llm`` through the worker extension, chunk by chunk (each
    tensor cast to the engine's ``dtype`` on its ``device`` first); an ``asleep`` engine gets its weights
    memory back before and its KV-cache memory after. Ends with ``reset_prefix_cache()``. Returns the
    number of tensors sent."""
    if asleep:
        llm.wake_up(tags=["weights"])
    sent = 0
    on_device = ((name, t.detach().to(device=device, dtype=dtype)) for name, t in named)
    for chunk in weight_chunks(on_device, max_bytes):
        llm.collective_rpc(LOAD_METHOD, args=(chunk,))
        sent += len(chunk)
    if asleep:
        llm.wake_up(tags=["kv_cache"])
    llm.reset_prefix_cache()
    return sent


class VLLMPolicy(Policy):
    """A colocated vLLM engine over ``model_path`` configured by ``cfg.policy`` (module docstring).
    Its log-probs are exact unless the sampling truncates (top-p < 1 or top-k > 0)."""

    def __init__(self, model_path: str, cfg: RunConfig, *, seed: int = 0) -> None:
        options = engine_options(model_path, cfg, seed=seed)
        try:
            from vllm import LLM
        except ImportError:
            raise UserError(MISSING) from None
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        vc = cfg.policy.vllm
        self.sleep_level = vc.sleep_level if vc.enable_sleep_mode else None
        self.chunk_bytes = vc.sync_chunk_mb * 2**20
        self.dtype = getattr(torch, cfg.policy.dtype)
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.asleep = False
        self.llm = LLM(**options)

    def exact_logprobs(self, sampling: SamplingParams) -> bool:
        return not sampling.truncates

    def sleep(self) -> None:
        """Free the engine's GPU memory for the trainer's update (no-op without sleep mode)."""
        if self.sleep_level is not None and not self.asleep:
            self.llm.sleep(level=self.sleep_level)
            self.asleep = True

    def load_weights(self, named: NamedTensors) -> int:
        """Replace the engine's weights with ``named`` (checkpoint names), waking it if it sleeps
        (:func:`replace_weights`). Returns the tensors sent."""
        sent = replace_weights(
            self.llm, named, asleep=self.asleep, max_bytes=self.chunk_bytes, dtype=self.dtype, device=self.device
        )
        self.asleep = False
        return sent

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int | Sequence[int],
        sampling: SamplingParams = SamplingParams(),
        *,
        conversations: Sequence[list[dict[str, str]]] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[Generation]:
        if self.asleep:
            raise RuntimeError("the vLLM engine sleeps: load the trained weights (load_weights) before sampling")
        import vllm
        from vllm.inputs import TokensPrompt

        limits, row_seeds = per_prompt(max_new_tokens, len(prompts)), prompt_seeds(seeds, len(prompts))
        params = [
            vllm.SamplingParams(
                max_tokens=limit,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k if sampling.top_k > 0 else -1,
                stop_token_ids=sorted(sampling.stop_token_ids),
                logprobs=0,  # the sampled token's own log-prob only
                detokenize=False,
                seed=seed,
            )
            for limit, seed in zip(limits, row_seeds, strict=True)
        ]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
        generations = []
        for output in outputs:
            sample = output.outputs[0]
            ids = list(sample.token_ids)
            logprobs = [step[token].logprob for step, token in zip(sample.logprobs or [], ids, strict=True)]
            generations.append(Generation(ids, logprobs, "length" if sample.finish_reason == "length" else "stop"))
        return generations

    def close(self) -> None:
        self.llm = None
