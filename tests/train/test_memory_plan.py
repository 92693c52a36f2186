"""The memory plan (:mod:`echo_rl.train.memplan`) against measured peaks and published model shapes.

Measured: the CPU allocator's peak of a real forward + backward + AdamW step of small random Qwen3
models (:mod:`echo_rl.train.memory`), fp32 and bf16 autocast over fp32 weights, activation
checkpointing off and on. FSDP2 is planned from first principles only (not measured here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from echo_rl.config import RunConfig
from echo_rl.errors import UserError
from echo_rl.models.load import resolve_checkpoint
from echo_rl.train.memory import measured_step_peak
from echo_rl.train.memplan import GIB, PRESETS, memory_plan, model_shape, plan_for_device, shape_from_config

CONFIGS = Path(__file__).parents[2] / "configs"


def _qwen3(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=768, vocab=4096) -> Qwen3Config:
    return Qwen3Config(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                       num_key_value_heads=kv_heads, head_dim=hidden // heads, intermediate_size=intermediate,
                       tie_word_embeddings=True)


SMALL = {"hidden": 256, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 768, "vocab": 4096}
WIDE_VOCABULARY = {"hidden": 64, "layers": 2, "heads": 2, "kv_heads": 1, "intermediate": 192, "vocab": 16384}
_MEASURED: dict[tuple[str, bool, str], tuple[int, int]] = {}


def _plan_and_measure(sizes: dict, checkpointing: bool, dtype: str = "float32", tokens: int = 1024) -> tuple[int, int]:
    """(planned, measured) peak of one step of a small Qwen3 at ``tokens`` tokens (measured once)."""
    key = (repr(sizes), checkpointing, dtype)
    if key not in _MEASURED:
        config = _qwen3(**sizes)
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(config)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        ids = torch.randint(0, config.vocab_size, (1, tokens))
        measured = measured_step_peak(model, ids, torch.ones_like(ids), chunk_size=256, dtype=dtype)
        cfg = RunConfig.model_validate({
            "policy": {"dtype": dtype}, "train": {"micro_batch_size": 1}, "episode": {"max_context_tokens": tokens},
            "objective": {"logprob_chunk_size": 256}, "parallel": {"activation_checkpointing": checkpointing},
        })
        _MEASURED[key] = memory_plan(cfg, shape=shape_from_config(config.to_dict(), "small")).total, measured
    return _MEASURED[key]


@pytest.mark.parametrize(
    ("sizes", "checkpointing", "dtype"),
    [(SMALL, False, "float32"), (SMALL, True, "float32"), (WIDE_VOCABULARY, False, "float32"), (SMALL, False, "bfloat16")],
    ids=["layers", "layers-checkpointed", "log-prob-chunks", "bf16-autocast"],
)
def test_plan_is_within_25_percent_of_the_measured_peak(sizes, checkpointing, dtype):
    planned, measured = _plan_and_measure(sizes, checkpointing, dtype)
    assert 0.75 <= planned / measured <= 1.25, (planned, measured)


def test_checkpointing_lowers_planned_and_measured_peak_alike():
    (off, measured_off), (on, measured_on) = _plan_and_measure(SMALL, False), _plan_and_measure(SMALL, True)
    assert on < 0.8 * off and measured_on < 0.8 * measured_off
    assert abs(on / off - measured_on / measured_off) < 0.15


def test_parameter_counts_match_the_real_model_and_the_published_ones():
    config = _qwen3(layers=3, vocab=1000)
    config.tie_word_embeddings = False
    shape = shape_from_config(config.to_dict(), "small")
    assert shape.params == sum(p.numel() for p in Qwen3ForCausalLM(config).parameters())
    tiny = Qwen3ForCausalLM.from_pretrained(resolve_checkpoint("tiny"))
    assert model_shape("tiny").params == sum(p.numel() for p in tiny.parameters())
    non_embedding = {"qwen3-0.6b": 0.44e9, "qwen3-1.7b": 1.4e9, "qwen3-8b": 6.95e9, "qwen3-14b": 13.2e9}
    for name, published in non_embedding.items():
        layers = PRESETS[name].layers * PRESETS[name].layer_params
        assert abs(layers / published - 1) < 0.02, name
    assert round(PRESETS["qwen3-8b"].params / 1e9, 1) == 8.2 and round(PRESETS["qwen3-14b"].params / 1e9, 1) == 14.8


def test_lora_trainable_parameters_match_peft():
    peft = pytest.importorskip("peft")
    config = _qwen3(layers=2, vocab=512)
    cfg = RunConfig.model_validate({"policy": {"lora": {"enabled": True, "rank": 8, "target_modules": ["q_proj", "up_proj"]}}})
    plan = memory_plan(cfg, shape=shape_from_config(config.to_dict(), "small"))
    lora = peft.get_peft_model(Qwen3ForCausalLM(config), peft.LoraConfig(r=8, target_modules=["q_proj", "up_proj"]))
    assert plan.trainable == lora.get_nb_trainable_parameters()[0]
    assert plan.optimizer == 8 * plan.trainable


def test_sharding_divides_static_memory_and_world_size_matters():
    base = {"policy": {"model": "qwen3-8b", "dtype": "bfloat16"}, "parallel": {"activation_checkpointing": True}}
    none = memory_plan(RunConfig.model_validate(base))
    ddp = memory_plan(RunConfig.model_validate(base | {"parallel": {"mode": "ddp", "activation_checkpointing": True}}),
                      world_size=8)
    fsdp = memory_plan(RunConfig.model_validate(base | {"parallel": {"mode": "fsdp2", "activation_checkpointing": True}}),
                       world_size=8)
    static = lambda plan: plan.weights + plan.gradients + plan.optimizer  # noqa: E731
    p = PRESETS["qwen3-8b"].params
    assert static(none) == 18 * p and static(ddp) == 22 * p
    shape = PRESETS["qwen3-8b"]
    sharded = -(-4 * p // 8) * 2 + -(-8 * p // 8)  # weights, gradients, AdamW ÷ 8
    working_set = 2 * (2 * shape.layer_params + shape.root_params) + 4 * (shape.layer_params + shape.root_params)
    assert static(fsdp) == sharded + working_set + 2 * p  # + the sampler's full bf16 copy
    assert static(fsdp) < static(none) / 3 and ddp.activations == none.activations
    assert fsdp.activations < none.activations  # FSDP2's bf16 parameters keep the stream bf16; autocast keeps it fp32


def test_cli_plan_prints_and_writes_nothing(cli, tmp_path):
    result = cli("train", str(CONFIGS / "paper.yaml"), "policy.model=qwen3-8b", "parallel.mode=fsdp2",
                 "parallel.activation_checkpointing=true", "train.micro_batch_size=1", "--plan", "--world-size", "8",
                 "--device-memory-gb", "80", cwd=str(tmp_path))
    assert result.code == 0, result.stderr
    assert "qwen3-8b (8.19B parameters), 8 rank(s), parallel.mode=fsdp2" in result.stdout
    assert "fits in 80.0 GiB" in result.stdout and list(tmp_path.iterdir()) == []


def test_plan_that_does_not_fit_is_one_line_exit_2(cli, tmp_path):
    result = cli("train", str(CONFIGS / "paper.yaml"), "policy.model=qwen3-8b", "parallel.activation_checkpointing=false",
                 "--plan", "--world-size", "8", "--device-memory-gb", "80", "--out", str(tmp_path / "run"))
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "per rank exceeds 80.0 GiB" in result.stderr
    assert "parallel.activation_checkpointing=true" in result.stderr and not (tmp_path / "run").exists()


def test_unknown_model_for_the_plan_is_a_user_error():
    with pytest.raises(UserError, match="policy.model"):
        memory_plan(RunConfig.model_validate({"policy": {"model": "/no/such/model"}}))
    assert memory_plan(RunConfig.model_validate({"policy": {"model": "qwen3-1.7b"}})).total > GIB


def test_vllm_engine_share_counts_while_sampling_and_names_its_field():
    cfg = RunConfig.model_validate({
        "policy": {"model": "qwen3-8b", "dtype": "bfloat16", "backend": "vllm", "vllm": {"gpu_memory_utilization": 0.9}},
        "parallel": {"mode": "fsdp2", "activation_checkpointing": True},
    })
    plan = plan_for_device(cfg, world_size=8, device_bytes=80 * GIB)
    assert plan.engine == int(0.9 * 80 * GIB) and plan.engine_asleep == GIB
    assert plan.total == plan.rollout > plan.update
    with pytest.raises(UserError, match=r"change policy\.vllm\.gpu_memory_utilization$"):
        plan.check_fits(80 * GIB)
