"""Base model + LoRA adapter -> one plain transformers model, and its safetensors folder.

The merge runs in fp32 (W + alpha/r * B @ A through peft's merge_and_unload), so the only
rounding is the final cast to the saved dtype. The saved folder needs neither peft nor
ragtune: config.json, model.safetensors, the tokenizer with its chat template, and a
generation_config.json whose eos ids include the end-of-turn token, so plain
`model.generate` and vLLM stop where ragtune's own generation stops.

    model = merge_adapter(model, "runs/lora/adapter")        # model: fp32 transformers
    save_merged(model, tokenizer, Path("out/merged"), "bf16")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragtune.generation.local import stop_token_ids
from ragtune.models import load_adapter
from ragtune.runtime import torch_dtype


def merge_adapter(model: Any, adapter: str) -> Any:
    """`model` with the LoRA delta of `adapter` (an adapter folder) added to its weights."""
    return load_adapter(model, adapter).merge_and_unload()


def save_merged(model: Any, tokenizer: Any, out: Path, dtype: str) -> Path:
    """Cast `model` to `dtype` in place (it is not used in fp32 afterwards) and save it."""
    model.to(torch_dtype(dtype))
    gen = model.generation_config
    gen.eos_token_id = stop_token_ids(tokenizer, model.config)
    gen.pad_token_id = tokenizer.pad_token_id
    gen.do_sample = False  # greedy, as ragtune evaluates; the sampling knobs would only warn
    for knob in ("temperature", "top_p", "top_k"):
        setattr(gen, knob, None)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
