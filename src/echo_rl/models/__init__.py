"""Models: a locally trained tokenizer (:mod:`.tokenizer`), a tiny Qwen3 (:mod:`.tiny`),
SmolLM2-135M-Instruct (:mod:`.smollm2`) and the model-spec resolver (:mod:`.load`).

Import from the submodules; this package imports nothing, so that resolving a spec stays cheap.
"""
