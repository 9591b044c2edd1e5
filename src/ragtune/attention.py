"""Attention for CPU training: plain matmul-softmax for short batches, sdpa for long ones.

On CPU, torch's fused sdpa kernel is slower than two matmuls and a softmax for short
sequences: a SmolLM2 LoRA forward + backward (batch 4, bf16) ran ~10% faster with the plain
form at 128-384 tokens, and ~30% slower at 512-768, where the plain form's (batch, heads, T, T)
probability matrices, kept per layer for the backward pass, also grow with T squared. So long
batches go to sdpa. The switch is
per forward call, and the two paths compute the same function (tests/test_attention.py).

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=register())
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "ragtune_cpu"
EAGER_MAX_LEN = 400
"""Longest sequence that takes the matmul-softmax path (the crossover measured above). At 400
tokens, batch 4 and 14 heads the probabilities cost 4*14*400^2*6 B = 54 MB per layer (fp32
softmax output + bf16 copy)."""


def _repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, kv_heads, T, D) -> (B, kv_heads*groups, T, D) for grouped-query attention."""
    if groups == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None].expand(b, h, groups, t, d).reshape(b, h * groups, t, d)


def matmul_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(QK^T * scale + mask) V with an additive float mask, softmax in fp32."""
    groups = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def hybrid_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if key.shape[-2] <= EAGER_MAX_LEN:
        return matmul_attention(module, query, key, value, attention_mask, **kwargs)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register() -> str:
    """Make NAME a valid `attn_implementation`; it gets the additive float mask eager uses
    (sdpa accepts that form too), so either path can take any batch."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, hybrid_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    return NAME
