"""echo-rl's side of the vLLM backend, checked without vLLM (it is CUDA-only and not installed here).

Nothing here runs vLLM: these tests cover what echo-rl sends to it — the engine options, the weight sync
as named tensors through the worker extension's method NAME, its order relative to sleep/wake and
``reset_prefix_cache`` — and the extension's own code, run on a real torch module behind vLLM's
``load_weights(weights=[(name, tensor), ...])`` contract. Whether vLLM accepts them is for a GPU run
(README: the vLLM path is experimental).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rollout_helpers import tiny_chat

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.models.tiny import build_tiny_qwen3
from echo_rl.rollout.policy.vllm import LOAD_METHOD, engine_options, replace_weights, weight_chunks
from echo_rl.rollout.policy.vllm_worker import WORKER_EXTENSION, WeightSyncExtension
from echo_rl.train.policy_sync import checkpoint_weights, merged_adapters

needs_no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")


class CheckpointLoadingModel(torch.nn.Module):
    """A model behind vLLM's loader contract: ``load_weights(weights=[(checkpoint name, tensor), ...])``
    copies each tensor into the parameter of that name and returns the names loaded."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> set[str]:
        own = self.inner.state_dict()
        with torch.no_grad():
            for name, tensor in weights:
                own[name].copy_(tensor)
        return {name for name, _ in weights}


class Worker(WeightSyncExtension):
    """A worker with the extension mixed in, as vLLM's WorkerWrapperBase builds it (its model runner
    holds the engine's model)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model_runner = SimpleNamespace(model=model)


class RecordingEngine:
    """Stands in for ``vllm.LLM`` only to record what echo-rl calls, in order; ``collective_rpc`` runs
    the named method on the worker as vLLM's ``run_method`` does, and refuses callables (vLLM's V1
    engine will not serialise functions)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.calls: list[tuple[str, object]] = []

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        assert isinstance(method, str), "only a method name may cross into vLLM's workers"
        self.calls.append(("rpc", [(name, tuple(t.shape), t.dtype) for name, t in args[0]]))
        return [getattr(self.worker, method)(*args, **(kwargs or {}))]

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags or ())))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache", None))
        return True


def _model(seed: int):
    return build_tiny_qwen3(tiny_chat().tokenizer, seed=seed, hidden_size=64, num_layers=2, intermediate_size=128)


def test_weight_sync_loads_named_tensors_in_chunks_then_resets_the_prefix_cache():
    trained, engine_model = _model(seed=1), CheckpointLoadingModel(_model(seed=0))
    engine = RecordingEngine(Worker(engine_model))
    before = engine.worker.echo_rl_weight_checksum()
    limit = 64 * 1024
    sent = replace_weights(
        engine, checkpoint_weights(trained), asleep=True, max_bytes=limit, dtype=torch.bfloat16,
        device=torch.device("cpu"),
    )
    assert sent == len(trained.state_dict())
    kinds = [kind for kind, _ in engine.calls]
    assert kinds[0] == "wake_up" and engine.calls[0][1] == ("weights",)
    assert kinds[-2:] == ["wake_up", "reset_prefix_cache"] and engine.calls[-2][1] == ("kv_cache",)
    chunks = [payload for kind, payload in engine.calls if kind == "rpc"]
    assert len(chunks) > 2
    for chunk in chunks:
        assert all(dtype == torch.bfloat16 for _, _, dtype in chunk)
        sizes = [torch.Size(shape).numel() * 2 for _, shape, _ in chunk]
        assert len(chunk) == 1 or sum(sizes) <= limit
    assert [name for chunk in chunks for name, _, _ in chunk] == list(trained.state_dict())
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(engine_model.inner.state_dict()[name], tensor.to(torch.bfloat16).float())
    assert engine.worker.echo_rl_weight_checksum() != before


def test_awake_engine_gets_no_wake_up_but_still_a_prefix_cache_reset():
    engine = RecordingEngine(Worker(CheckpointLoadingModel(_model(seed=0))))
    replace_weights(engine, checkpoint_weights(_model(seed=2)), asleep=False, max_bytes=2**30,
                    dtype=torch.float32, device=torch.device("cpu"))
    assert [kind for kind, _ in engine.calls] == ["rpc", "reset_prefix_cache"]


def test_weight_chunks_keep_order_and_bound_bytes():
    tensors = [(f"t{i}", torch.zeros(n)) for i, n in enumerate([10, 20, 300, 5, 5])]
    chunks = list(weight_chunks(tensors, max_bytes=30 * 4))
    assert [[name for name, _ in chunk] for chunk in chunks] == [["t0", "t1"], ["t2"], ["t3", "t4"]]


def test_peft_model_syncs_its_merged_weights_under_checkpoint_names():
    peft = pytest.importorskip("peft")
    base = _model(seed=3)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_()  # a trained adapter: B·A ≠ 0
    with merged_adapters(lora):
        synced = {name: tensor.clone() for name, tensor in checkpoint_weights(lora)}
    reference = _model(seed=3)
    reference.load_state_dict(lora.merge_and_unload().state_dict())
    assert synced.keys() == reference.state_dict().keys()
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(synced[name], tensor)
    assert not torch.equal(synced["model.layers.0.self_attn.q_proj.weight"],
                           _model(seed=3).state_dict()["model.layers.0.self_attn.q_proj.weight"])


def test_engine_options_follow_the_config_and_name_the_extension(monkeypatch):
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    cfg = RunConfig.model_validate({"policy": {"dtype": "bfloat16", "vllm": {"gpu_memory_utilization": 0.3}}})
    options = engine_options("/ckpt", cfg, seed=5)
    assert options["logprobs_mode"] == "processed_logprobs"
    assert options["max_model_len"] == cfg.episode.max_context_tokens
    assert options["gpu_memory_utilization"] == 0.3 and options["enable_sleep_mode"] is True
    assert "distributed_executor_backend" not in options
    module, _, name = options["worker_extension_cls"].rpartition(".")
    extension = getattr(importlib.import_module(module), name)
    assert callable(getattr(extension, LOAD_METHOD)) and options["worker_extension_cls"] == WORKER_EXTENSION
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert engine_options("/ckpt", cfg, seed=5)["distributed_executor_backend"] == "external_launcher"
    wide = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"vllm": cfg.policy.vllm.model_copy(
        update={"tensor_parallel_size": 2})})})
    with pytest.raises(UserError, match=r"^policy\.vllm\.tensor_parallel_size: must be 1 with external_launcher"):
        engine_options("/ckpt", wide, seed=5)


def test_external_launcher_without_torchrun_is_refused(monkeypatch):
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    cfg = RunConfig.model_validate({"policy": {"vllm": {"external_launcher": "on"}}})
    with pytest.raises(UserError, match=r"^policy\.vllm\.external_launcher=on: needs torchrun"):
        engine_options("/ckpt", cfg, seed=0)


@needs_no_vllm
def test_vllm_backend_without_vllm_is_one_line_exit_2_and_writes_nothing(cli, tmp_path):
    config = Path(__file__).parents[2] / "configs" / "tiny.yaml"
    result = cli("train", str(config), "policy.backend=vllm", "--out", str(tmp_path / "run"))
    assert result.code == 2
    assert result.stderr == "echo-rl: error: policy.backend=vllm needs vLLM >= 0.10.2 (pip install 'echo-rl[vllm]', CUDA GPUs)\n"
    assert not (tmp_path / "run").exists()
