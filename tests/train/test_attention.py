"""The fast training path computes the same thing as the plain one.

ragtune trains with a bf16 frozen base under autocast, its CPU attention (matmul-softmax for
short sequences, sdpa for long ones), packed batches (examples back to back, no padding) and
logits at answer positions only. Each must leave the loss and the LoRA gradients unchanged,
up to bf16 rounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from ragtune.prompt.encode import encode_example
from ragtune.prompt.grounded import PromptConfig
from ragtune.train import attention
from ragtune.train.batches import collate, collate_packed
from ragtune.train.config import LoraSection, TrainConfig
from ragtune.train.loss import answer_loss
from ragtune.train.model import build_model


def _count_matmul_attention(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry per call of the matmul-softmax path."""
    calls: list[int] = []
    plain = attention.matmul_attention

    def spy(*a: object, **kw: object) -> object:
        calls.append(1)
        return plain(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(attention, "matmul_attention", spy)
    return calls


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, 500, (3, 24), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0
    mask[2, 6:] = 0
    return ids, mask


@pytest.mark.parametrize("eager_max_len", [400, 4])  # 4: every batch takes the sdpa path
def test_hybrid_attention_matches_eager(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, eager_max_len: int
) -> None:
    monkeypatch.setattr(attention, "EAGER_MAX_LEN", eager_max_len)
    calls = _count_matmul_attention(monkeypatch)
    ids, mask = _padded_batch()
    logits = {}
    for impl in ("eager", attention.register()):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=impl)
        with torch.no_grad():
            logits[impl] = model(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()  # padded positions hold garbage in every implementation
    diff = (logits["eager"] - logits[attention.NAME])[real].abs().max().item()
    assert diff < 1e-5
    # 24 tokens: the matmul-softmax path below the limit (once per layer), sdpa above it
    assert len(calls) == (2 if eager_max_len >= ids.shape[1] else 0)


def _build(cfg: TrainConfig, dtype: torch.dtype) -> tuple:
    return build_model(
        cfg.model, cfg.method, cfg.lora, attention_impl=cfg.attention, dtype=dtype, seed=cfg.seed
    )


def _lora_grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [p.grad.float().flatten() for n, p in model.named_parameters() if p.grad is not None]
    )


def test_fast_training_step_equals_plain_step(tiny_model_dir: Path, qa_examples: list) -> None:
    cfg = TrainConfig(model=str(tiny_model_dir), lora=LoraSection(r=4, alpha=8, dropout=0.0))
    fast, tok = _build(cfg, torch.bfloat16)
    assert fast.get_base_model().config._attn_implementation == attention.NAME
    assert next(fast.get_base_model().model.parameters()).dtype == torch.bfloat16
    lora_layers = [m for m in fast.modules() if hasattr(m, "cast_input_dtype_enabled")]
    assert lora_layers and not any(m.cast_input_dtype_enabled for m in lora_layers)
    torch.manual_seed(1)
    for n, p in fast.named_parameters():
        if "lora_B" in n:  # B starts at zero; make the adapter matter
            torch.nn.init.normal_(p, std=0.5)
    plain, _ = _build(
        TrainConfig(
            model=str(tiny_model_dir),
            attention="sdpa",
            method="lora",
            lora=LoraSection(r=4, alpha=8, dropout=0.0),
        ),
        torch.float32,
    )
    plain.load_state_dict(
        {k: v.float() for k, v in fast.state_dict().items() if "lora_" in k}, strict=False
    )
    rows = [encode_example(tok, e, PromptConfig(), 512) for e in qa_examples]
    batch = collate(tok.pad_token_id, answer_logits_only=True)(rows)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            logits_to_keep=batch["logits_to_keep"],
        )
        fast_loss = answer_loss(out, batch["labels"])
    fast_loss.backward()
    plain_loss = plain(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
    ).loss
    plain_loss.backward()

    assert fast_loss.item() == pytest.approx(plain_loss.item(), rel=2e-2)
    g_fast, g_plain = _lora_grads(fast), _lora_grads(plain)
    assert g_fast.shape == g_plain.shape
    cosine = torch.nn.functional.cosine_similarity(g_fast, g_plain, dim=0).item()
    assert cosine > 0.99


def test_packed_batch_layout() -> None:
    rows = [
        {"input_ids": [5, 6, 7], "labels": [-100, -100, 7]},
        {"input_ids": [8, 9], "labels": [8, 9]},  # a label on the first token: dropped
    ]
    b = collate_packed(answer_logits_only=True)(rows)
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert b["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert b["cu_seq_lens_q"].tolist() == [0, 3, 5]
    assert b["labels"].tolist() == [[-100, -100, 7, -100, 9]]
    # position t is kept when token t+1 is a label: never across the seam at 2 -> 3
    assert b["logits_to_keep"].tolist() == [[False, True, False, True, False]]
    assert "attention_mask" not in b and b["use_cache"] is False


@pytest.mark.parametrize("eager_max_len", [400, 8])  # 8: every example takes sdpa
def test_packed_batch_equals_padded_batch(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, eager_max_len: int, qa_examples: list
) -> None:
    """Same examples, one packed row vs right-padded rows: the same loss and LoRA gradients
    (fp32, so any leak between packed examples would show far above rounding)."""
    monkeypatch.setattr(attention, "EAGER_MAX_LEN", eager_max_len)
    calls = {"matmul": 0, "sdpa": 0}
    plain_matmul, plain_sdpa = (
        attention.matmul_attention,
        torch.nn.functional.scaled_dot_product_attention,
    )

    def matmul_spy(*a: Any, **kw: Any) -> Any:
        calls["matmul"] += 1
        return plain_matmul(*a, **kw)

    def sdpa_spy(*a: Any, **kw: Any) -> Any:
        calls["sdpa"] += 1
        return plain_sdpa(*a, **kw)

    monkeypatch.setattr(attention, "matmul_attention", matmul_spy)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", sdpa_spy)
    cfg = TrainConfig(model=str(tiny_model_dir), lora=LoraSection(r=4, alpha=8, dropout=0.0))
    model, tok = _build(cfg, torch.float32)
    torch.manual_seed(2)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    rows = [encode_example(tok, e, PromptConfig(), 512) for e in qa_examples]
    assert (
        min(len(r["input_ids"]) for r in rows) > 8 and max(len(r["input_ids"]) for r in rows) < 400
    )
    results = []
    for batch in (
        collate(tok.pad_token_id, answer_logits_only=True)(rows),
        collate_packed(answer_logits_only=True)(rows),
    ):
        model.zero_grad()
        calls.update(matmul=0, sdpa=0)
        out = model(**{k: v for k, v in batch.items() if k != "labels"})
        loss = answer_loss(out, batch["labels"])
        loss.backward()
        results.append((loss.item(), _lora_grads(model)))
    # the packed forward attended each example on its own (2 layers x 3 examples), on the
    # path its length picks
    path = "matmul" if eager_max_len == 400 else "sdpa"
    assert calls[path] == 2 * len(rows) and sum(calls.values()) == 2 * len(rows)
    (padded_loss, padded_grads), (packed_loss, packed_grads) = results
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert torch.allclose(packed_grads, padded_grads, rtol=1e-4, atol=1e-6)


def test_lora_init_depends_on_the_seed_alone(tiny_model_dir: Path) -> None:
    cfg = TrainConfig(model=str(tiny_model_dir), lora=LoraSection(r=4, alpha=8), seed=3)
    inits = []
    for stray in (0, 5):  # RNG draws before the build must not change the adapter's init
        torch.manual_seed(99)
        torch.rand(stray)
        model, _ = _build(cfg, torch.float32)
        inits.append(_lora_a_weights(model))
    assert torch.equal(inits[0], inits[1])
    other, _ = _build(TrainConfig(**{**cfg.__dict__, "seed": 4}), torch.float32)
    assert not torch.equal(inits[0], _lora_a_weights(other))


def _lora_a_weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_A" in n])


def test_measured_crossover_follows_the_timings_and_is_cached() -> None:
    config = {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}
    calls = []

    def fake(heads: int, kv: int, dim: int, n: int, dtype: Any, budget: float) -> dict:
        calls.append((heads, kv, dim, n))
        return {"eager": n / 1000, "sdpa": 0.3}  # eager wins up to 300 tokens

    limit, record = attention.measured_crossover(config, torch.float32, 1, time_fn=fake)
    assert limit == 256 and not record["cached"]
    assert calls[0] == (4, 2, 16, 128) and len(calls) == len(attention.PROBE_LENGTHS)
    again, record = attention.measured_crossover(config, torch.float32, 1, time_fn=fake)
    assert again == 256 and record["cached"] and len(calls) == len(attention.PROBE_LENGTHS)
    attention.measured_crossover(config, torch.bfloat16, 1, time_fn=fake)
    assert len(calls) == 2 * len(attention.PROBE_LENGTHS)  # another dtype: measured again


def test_real_kernel_timing_is_positive() -> None:
    seconds = attention.time_kernels(2, 1, 8, 32, torch.float32, 0.001)
    assert set(seconds) == {"eager", "sdpa"} and all(s > 0 for s in seconds.values())


@pytest.mark.parametrize("eager_max_len", [0, 64])
def test_register_switches_at_the_given_length(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, eager_max_len: int
) -> None:
    calls = _count_matmul_attention(monkeypatch)
    ids, mask = _padded_batch()  # 24 tokens
    impl = attention.register(eager_max_len)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=impl)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    attention.register()  # the default again for later tests
    assert len(calls) == (2 if eager_max_len >= ids.shape[1] else 0)
