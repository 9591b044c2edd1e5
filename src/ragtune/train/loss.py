"""Answer-only loss without full-vocabulary logits.

RAG training examples are ~95% prompt, and the prompt carries no loss. Projecting every
position onto the vocabulary (SmolLM2: 49,152 columns) and taking a log-softmax there is the
largest avoidable cost of a step and most of its memory: 8 seq x 400 tok x 49,152 x 4 B
= 630 MB of fp32 logits per forward, before their gradient. The collator marks the positions
whose *next* token is a label (`answer_mask`); the model's `logits_to_keep` projects only
those; `answer_loss` scores them. The result equals the model's own shifted cross-entropy
(tests/test_loss.py checks it), at a fraction of the cost.

    batch["logits_to_keep"] = answer_mask(batch["labels"])      # in the collator
    Trainer(..., compute_loss_func=answer_loss)
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from ragtune.prompt.encode import IGNORE_INDEX


def answer_mask(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True at position t when token t+1 is a label (t predicts it)."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


def answer_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """Cross-entropy of the kept logits (N, V) against their targets, in the row-major order
    that `hidden_states[mask]` produced them. Summed and divided by the label count of the whole
    accumulated batch when the Trainer passes it, so gradient accumulation weighs every token
    equally; else the mean."""
    shifted = labels[:, 1:]
    targets = shifted[shifted != IGNORE_INDEX]  # (N,)
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    loss = F.cross_entropy(logits.float(), targets.to(logits.device), reduction="sum")
    if num_items_in_batch is None:
        return loss / max(1, targets.numel())
    return loss / num_items_in_batch


def target_weights(labels: torch.Tensor, refusals: list[list[int]], weight: float) -> torch.Tensor:
    """(N,) weights of the answer-only targets, in `answer_loss`'s order: `weight` for the
    tokens of an answer that begins with one of the `refusals` token sequences, 1 elsewhere.
    An answer is a run of consecutive labels (one example's reply, packed or padded)."""
    out = []
    for row in labels[:, 1:].tolist():
        run: list[int] = []
        for token in [*row, IGNORE_INDEX]:  # the sentinel closes the last run
            if token != IGNORE_INDEX:
                run.append(token)
                continue
            if run:
                refusal = any(r and run[: len(r)] == r for r in refusals)
                out.extend([weight if refusal else 1.0] * len(run))
                run = []
    return torch.tensor(out)


def weighted_answer_loss(refusals: list[list[int]], weight: float) -> Any:
    """`answer_loss` with the refusal targets' tokens weighted by `weight` (train's
    `refusal_loss_weight`): below 1, refusing counts for less than answering, a lever
    against a model that learns to refuse answerable questions."""

    def loss_fn(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> Any:
        shifted = labels[:, 1:]
        targets = shifted[shifted != IGNORE_INDEX]
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        per_token = F.cross_entropy(logits.float(), targets.to(logits.device), reduction="none")
        w = target_weights(labels, refusals, weight).to(per_token.device)
        loss = (per_token * w).sum()
        if num_items_in_batch is None:
            return loss / max(1, targets.numel())
        return loss / num_items_in_batch

    return loss_fn


def supports_logits_to_keep(model: Any) -> bool:
    """True when the (possibly peft-wrapped) model's forward takes `logits_to_keep`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters
