"""Batched greedy decoding with a transformers causal LM: the local engine of the one generation
path (eval, RAG and serving all call it through the `Generator` protocol).

Batches are sorted by length and prefilled row by row (no compute on padding) into one
left-padded KV cache, then decoded with the KV cache until the chat template's end-of-turn
token. A LoRA adapter is merged into the weights by `load.load_generator`, so decoding runs at
the base model's speed.

    gen = LocalGenerator(model, tokenizer, max_new_tokens=48, batch_size=16, name="smollm2")
    gen.generate([build_messages(question, passages, PromptConfig())])[0].text
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ragtune.generation.base import Generation, Messages
from ragtune.prompt.grounded import render_prompt


def stop_token_ids(tokenizer: Any, model_config: Any) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, the model's eos (may be a list), and ChatML's."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


class LocalGenerator:
    """Greedy batched decoding with a transformers causal LM."""

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int, batch_size: int, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.stop_ids = stop_token_ids(tokenizer, model.config)
        self.device = next(model.parameters()).device

    def count_prompt_tokens(self, messages: Messages) -> int:
        prompt = render_prompt(self.tokenizer, messages)
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def generate(self, batch: list[Messages]) -> list[Generation]:
        prompts = [render_prompt(self.tokenizer, m) for m in batch]
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        # Sorting by length keeps each batch's padding (wasted compute) small.
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        out: list[Generation | None] = [None] * len(prompts)
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            rows = [encoded[i] for i in idx]
            t0 = time.perf_counter()
            ids, mask, cache = self._prefill(rows)
            prompt_s = time.perf_counter() - t0 if cache is not None else 0.0
            seqs = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                cache=cache,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=self.stop_ids,
                pad_token_id=pad_id,
                use_cache=True,
            )
            latency = time.perf_counter() - t0
            new = seqs[:, ids.shape[1] :].tolist()  # (B, new_tokens)
            for row, i in zip(new, idx):
                n = next((k for k, t in enumerate(row) if t in self.stop_ids), len(row))
                text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                out[i] = Generation(text, n, latency, len(idx), len(encoded[i]), prompt_s)
        return [g for g in out if g is not None]

    def _prefill(self, rows: list[list[int]]) -> tuple[Any, Any, Any]:
        """Left-padded ids and attention mask for a batch, and a KV cache that already holds
        every row's prompt but its last token (generate runs that one and decodes on).

        Each row is prefilled on its own, unpadded: in a batch of RAG prompts sorted by length,
        padding was still ~25% of the prompt tokens, and prompt processing is most of the work
        when answers are short. The rows' keys and values are then left-padded into one cache;
        the mask hides the padding. Models whose cache is not a plain per-layer list (sliding
        window, hybrid) take the usual padded prefill (cache None)."""
        from transformers import DynamicCache

        width = max(len(r) for r in rows)
        padded = self.tokenizer.pad({"input_ids": rows}, padding_side="left", return_tensors="pt")
        ids = padded["input_ids"].to(self.device)
        mask = padded["attention_mask"].to(self.device)
        if min(len(r) for r in rows) < 2:
            return ids, mask, None
        per_row = []
        for r in rows:
            cache = self.model(
                input_ids=torch.tensor([r[:-1]], device=self.device),
                use_cache=True,
                logits_to_keep=1,
            ).cache
            layers = getattr(cache, "layers", None)
            if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
                return ids, mask, None
            per_row.append([(layer.keys, layer.values) for layer in layers])
        merged = DynamicCache()
        for layer_idx in range(len(per_row[0])):
            keys, values = [], []
            for r, kv in zip(rows, per_row):
                pad = width - len(r)  # left padding in the sequence dim (B, heads, T, D)
                keys.append(torch.nn.functional.pad(kv[layer_idx][0], (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(kv[layer_idx][1], (0, 0, pad, 0)))
            merged.update(torch.cat(keys), torch.cat(values), layer_idx)
        return ids, mask, merged
