"""The model a training run updates: the base with LoRA adapters (or all weights, or 4-bit QLoRA).

Components take plain arguments (method, LoRA settings, attention kernel, dtype), not the
stage config, so benchmarks and tests build the same model the stage trains.

    model, tokenizer = build_model("smollm2-135m", "lora", LoraSection(r=8, alpha=16), "cpu", dtype)
"""

from __future__ import annotations

from typing import Any

import torch

from ragtune.errors import RagtuneError
from ragtune.train import attention
from ragtune.train.config import LoraSection


def attention_kernel(attention_impl: str, device: str, eager_max_len: int | None = None) -> str:
    """The attn_implementation to load: "auto" is ragtune's packed CPU kernel on CPU (sdpa
    above `eager_max_len` tokens), sdpa on GPU."""
    if attention_impl != "auto":
        return attention_impl
    if device == "cpu":
        return attention.register(eager_max_len)
    return "sdpa"


def _qlora_base(spec: str, dtype: torch.dtype) -> tuple[Any, Any]:
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ragtune.models import load_tokenizer, resolve

    tokenizer = load_tokenizer(spec)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        resolve(spec), quantization_config=quant, dtype=dtype
    )
    return prepare_model_for_kbit_training(model), tokenizer


def build_model(
    spec: str,
    method: str,
    lora: LoraSection,
    *,
    attention_impl: str = "auto",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    eager_max_len: int | None = None,
) -> tuple[Any, Any]:
    """Base model + tokenizer with LoRA adapters attached (or all weights trainable for full).
    `lora.r` and `lora.alpha` must be set (`config.resolve_defaults` fills them);
    `eager_max_len` is where ragtune's CPU attention switches to sdpa (`attention=auto`)."""
    from peft import LoraConfig, get_peft_model

    from ragtune.models import load_model, peft_quietly

    if method == "qlora":
        if not device.startswith("cuda"):
            raise RagtuneError(
                "method=qlora needs a CUDA GPU (4-bit bitsandbytes); use method=lora on CPU"
            )
        model, tokenizer = _qlora_base(spec, dtype)
    else:
        # Full fine-tuning keeps fp32 master weights (autocast supplies bf16 compute), so small
        # updates are not rounded away. A LoRA base is frozen and needs no master copy: loading
        # it in the compute dtype halves its memory and spares autocast from casting every
        # weight on every forward. peft keeps the adapter weights themselves in fp32.
        base_dtype = torch.float32 if method == "full" else dtype
        model, tokenizer = load_model(
            spec, base_dtype, device, attention_kernel(attention_impl, device, eager_max_len)
        )
    if method == "full":
        model.train()
        return model, tokenizer
    if not (lora.r and lora.alpha):
        raise ValueError("build_model: lora.r and lora.alpha must be set (resolve_defaults)")
    spec_t = lora.target_modules
    targets = (
        spec_t if spec_t == "all-linear" else [t.strip() for t in spec_t.split(",") if t.strip()]
    )
    lora_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # the adapter's init depends on the seed alone, not on loading
    with peft_quietly():
        peft_model = get_peft_model(model, lora_cfg)
    if dtype != torch.float32:
        # peft casts each LoRA input up to the adapter's fp32, and autocast casts it straight
        # back to bf16 for the matmul: two full-activation copies per layer, forward and
        # backward (10% of a CPU step). Under autocast the input can go in as it is.
        for module in peft_model.modules():
            if hasattr(module, "cast_input_dtype_enabled"):
                setattr(module, "cast_input_dtype_enabled", False)  # noqa: B010  (typed as Module attr)
    return peft_model, tokenizer
