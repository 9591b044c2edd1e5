"""Attention for CPU training: plain matmul-softmax for short sequences, sdpa for long ones,
and packed rows (several examples back to back, no padding) attended one sequence at a time.

On CPU, torch's fused sdpa kernel is slower than two matmuls and a softmax for short
sequences: a SmolLM2 LoRA forward + backward (batch 4, bf16) ran ~10% faster with the plain
form at 128-384 tokens, and ~30% slower at 512-768, where the plain form's (batch, heads, T, T)
probability matrices, kept per layer for the backward pass, also grow with T squared. So long
sequences go to sdpa. Where the two cross depends on the processor and the dtype, so
`measured_crossover` times both at the model's head shapes on first use (cached by
`ragtune.probe`), and `register(eager_max_len)` switches there. The switch is per sequence,
and the two paths compute the same function (tests/train/test_attention.py).

Packed rows come from `ragtune.train.collate_packed`: a batch is one row of all its examples
with `position_ids` restarting at each and `cu_seq_lens_q` marking the boundaries (the
flash-attention varlen convention, which transformers passes through to the attention
function). Linear layers then never run on padding, and each example's attention is exactly
its own causal triangle, so neither grows with the longest example in the batch.

    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=register())
"""

from __future__ import annotations

import functools
import time
from typing import Any

import torch

NAME = "ragtune_cpu"
EAGER_MAX_LEN = 400
"""Longest sequence that takes the matmul-softmax path when nothing was measured (the
crossover seen above). At 400 tokens, batch 4 and 14 heads the probabilities cost
4*14*400^2*6 B = 54 MB per layer (fp32 softmax output + bf16 copy)."""
PROBE_LENGTHS = (128, 256, 384, 512, 768, 1024)
"""Sequence lengths the crossover is timed at; it is the longest where matmul-softmax wins."""
PROBE_BUDGET_S = 0.04  # timing per kernel and length, after a warm-up pass


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
    """softmax((Q * scale) K^T + mask) V with an additive float mask.

    Scaling Q rather than the scores, and a softmax that returns the input dtype, each spare a
    full pass over the (batch, heads, T, T) scores, forward and backward: attention ran ~20%
    faster at 256 tokens. Precision is unchanged: torch's softmax computes in fp32 internally
    for bf16 input and rounds once, as `softmax(dtype=float32).to(bf16)` does."""
    groups = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, groups), _repeat_kv(value, groups)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query * scale, key.transpose(2, 3))
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    probs = torch.softmax(scores, dim=-1)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


@functools.lru_cache(maxsize=16)  # a step's few lengths, reused by every layer
def _causal_mask(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(1, 1, n, n) additive mask: 0 on and below the diagonal, the dtype's minimum above."""
    above = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
    mask = torch.zeros(n, n, dtype=dtype, device=device)
    return mask.masked_fill(above, torch.finfo(dtype).min)[None, None]


def varlen_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    cu_seq_lens: torch.Tensor,
    scaling: float | None = None,
    dropout: float = 0.0,
    eager_max_len: int | None = None,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each packed sequence of a (1, heads, N, D) row; `cu_seq_lens`
    holds the boundaries [0, n1, n1+n2, ..., N]. Returns (1, N, heads, D). Sequences up to
    `eager_max_len` tokens (default EAGER_MAX_LEN) take the matmul-softmax path."""
    limit = EAGER_MAX_LEN if eager_max_len is None else eager_max_len
    if query.shape[0] != 1:
        raise ValueError(f"packed attention needs one row per batch, got {query.shape[0]}")
    lengths = cu_seq_lens.diff().tolist()
    outs = []
    for q, k, v in zip(
        query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2), strict=True
    ):
        n = q.shape[-2]
        if n <= limit:
            out, _ = matmul_attention(
                module, q, k, v, _causal_mask(n, q.dtype, q.device), scaling, dropout
            )
        else:
            groups = q.shape[1] // k.shape[1]
            out = torch.nn.functional.scaled_dot_product_attention(
                q,
                _repeat_kv(k, groups),
                _repeat_kv(v, groups),
                is_causal=True,
                scale=scaling,
                dropout_p=dropout if module.training else 0.0,
            ).transpose(1, 2)
        outs.append(out)
    return torch.cat(outs, dim=1).contiguous(), None


def hybrid_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    eager_max_len: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    limit = EAGER_MAX_LEN if eager_max_len is None else eager_max_len
    cu_seq_lens = kwargs.get("cu_seq_lens_q")
    if cu_seq_lens is not None:  # a packed row: the mask the model built is not needed
        return varlen_attention(
            module,
            query,
            key,
            value,
            cu_seq_lens,
            kwargs.get("scaling"),
            kwargs.get("dropout", 0.0),
            limit,
        )
    if key.shape[-2] <= limit:
        return matmul_attention(module, query, key, value, attention_mask, **kwargs)
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register(eager_max_len: int | None = None) -> str:
    """Make NAME a valid `attn_implementation`, switching to sdpa above `eager_max_len`
    tokens (None: EAGER_MAX_LEN). It gets the additive float mask eager uses (sdpa accepts
    that form too), so either path can take any batch."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    kernel = hybrid_attention
    if eager_max_len is not None:
        kernel = functools.partial(hybrid_attention, eager_max_len=eager_max_len)
    AttentionInterface.register(NAME, kernel)
    AttentionMaskInterface.register(NAME, eager_mask)
    return NAME


def time_kernels(
    heads: int, kv_heads: int, head_dim: int, n: int, dtype: torch.dtype, budget_s: float
) -> dict[str, float]:
    """Seconds of one forward + backward of causal attention over one `n`-token sequence,
    matmul-softmax ("eager") and sdpa, as a training step runs them."""
    from types import SimpleNamespace

    gen = torch.Generator().manual_seed(n)
    q, k, v = (
        torch.randn(1, h, n, head_dim, generator=gen).to(dtype).requires_grad_()
        for h in (heads, kv_heads, kv_heads)
    )
    module = SimpleNamespace(training=True)
    mask = _causal_mask(n, dtype, q.device)
    groups = heads // kv_heads

    def eager() -> torch.Tensor:
        return matmul_attention(module, q, k, v, mask)[0]

    def sdpa() -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(
            q, _repeat_kv(k, groups), _repeat_kv(v, groups), is_causal=True
        )

    kernels = (("eager", eager), ("sdpa", sdpa))
    for _, fn in kernels:
        fn().sum().backward()  # warm-up
    # The best of three short rounds, interleaved: a single sample can be a stray slow
    # one (another process, a clock change), and the result is cached for good.
    seconds = {name: float("inf") for name, _ in kernels}
    for _ in range(3):
        for name, fn in kernels:
            reps, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < budget_s / 3 or reps == 0:
                fn().sum().backward()
                reps += 1
            seconds[name] = min(seconds[name], elapsed / reps)
    return seconds


def measured_crossover(
    config: dict[str, Any],
    dtype: torch.dtype,
    threads: int,
    *,
    time_fn: Any = None,
) -> tuple[int, dict[str, Any]]:
    """(eager_max_len, the probe's record) for this model's attention heads on this CPU:
    the longest of PROBE_LENGTHS at which matmul-softmax was at least as fast as sdpa,
    measured once per machine, dtype and head shape and cached (`ragtune.probe.cached`)."""
    from ragtune import probe

    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    time_fn = time_fn or time_kernels
    key = {
        **probe.machine_key(threads),
        "dtype": str(dtype),
        "heads": [heads, kv_heads, head_dim],
        "lengths": list(PROBE_LENGTHS),
    }

    def compute() -> dict[str, Any]:
        with probe.torch_threads(threads):
            runs = [
                time_fn(heads, kv_heads, head_dim, n, dtype, PROBE_BUDGET_S) for n in PROBE_LENGTHS
            ]
        seconds = {name: [round(r[name], 6) for r in runs] for name in ("eager", "sdpa")}
        return {"eager_max_len": probe.crossover(PROBE_LENGTHS, seconds), "seconds": seconds}

    record, hit = probe.cached("attention", key, compute)
    return int(record["eager_max_len"]), {**record, "cached": hit}
