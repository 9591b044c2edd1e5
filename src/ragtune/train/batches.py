"""Training batches: encoded examples, padded batches and packed rows.

On CPU, `collate_packed` puts a step's examples back to back in one row with no padding;
`ragtune.train.attention` keeps each example's attention to itself. Elsewhere `collate`
right-pads. Both mark answer positions when the model can project only those (`loss.py`).

    rows = encode_all(tokenizer, examples, PromptConfig(), max_length=1024)
    batch = collate_packed(answer_logits_only=True)(rows[:4])   # (1, sum of lengths)
"""

from __future__ import annotations

from typing import Any

import torch

from ragtune.example import Example
from ragtune.prompt.encode import IGNORE_INDEX, encode_example
from ragtune.prompt.grounded import PromptConfig
from ragtune.train.loss import answer_mask


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def collate(pad_id: int, answer_logits_only: bool = False):
    """Right-pad a batch; padding gets label -100 and attention 0. With `answer_logits_only`,
    also mark the answer positions so the model projects only those (`ragtune.train.loss`)."""

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        batch["use_cache"] = False  # training never reads a KV cache, so do not build one
        if answer_logits_only:
            batch["logits_to_keep"] = answer_mask(labels)
        return batch

    return fn


def collate_packed(answer_logits_only: bool = False):
    """One row of all the batch's examples back to back, no padding: `position_ids` restart at
    each example and `cu_seq_lens_q/k` mark the boundaries, which `ragtune.train.attention` uses to
    keep every example's attention to itself. Each example's first label is dropped: inside a
    packed row it would be "predicted" from the previous example's last token."""

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        lengths = [len(r["input_ids"]) for r in rows]
        ids = torch.tensor([t for r in rows for t in r["input_ids"]])[None]
        labels = torch.tensor([t for r in rows for t in r["labels"]])[None]
        bounds = torch.tensor([0, *lengths]).cumsum(0)
        labels[0, bounds[:-1]] = IGNORE_INDEX
        position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
        cu = bounds.to(torch.int32)
        batch = {
            "input_ids": ids,
            "labels": labels,
            "position_ids": position_ids,
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "use_cache": False,
        }
        if answer_logits_only:
            batch["logits_to_keep"] = answer_mask(labels)
        return batch

    return fn


def encode_all(
    tokenizer: Any, examples: list[Example], prompt: PromptConfig, max_length: int
) -> list[dict[str, Any]]:
    """input_ids and labels (answer-only) per example, in order."""
    rows = []
    for ex in examples:
        enc = encode_example(tokenizer, ex, prompt, max_length)
        rows.append({"input_ids": enc["input_ids"], "labels": enc["labels"]})
    return rows
