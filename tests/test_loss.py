"""The answer-only loss equals the model's own full-logits loss on the same batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ragtune.data.example import Example
from ragtune.loss import answer_loss, answer_mask, supports_logits_to_keep
from ragtune.models import load_model
from ragtune.prompt import PromptConfig, encode_example
from ragtune.train import collate

EXAMPLES = [
    Example(
        id="a",
        question="Where is the Eiffel Tower?",
        contexts=["The Eiffel Tower is in Paris."],
        answers=["Paris"],
    ),
    Example(
        id="b",
        question="Who founded it?",
        contexts=["Marlowe Station was founded in 1962 by Ada Quill. " * 3],
        answers=["Ada Quill"],
    ),
    Example(
        id="c", question="Who is the mayor?", contexts=["A town."], answers=[], answerable=False
    ),
]


def _batch(tok: object) -> dict[str, torch.Tensor]:
    rows = [encode_example(tok, e, PromptConfig(), 512) for e in EXAMPLES]
    return collate(tok.pad_token_id, answer_logits_only=True)(rows)  # type: ignore[attr-defined]


def test_mask_marks_positions_that_predict_labels() -> None:
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    assert answer_mask(labels).tolist() == [
        [False, True, True, False, False],
        [True, False, False, False, False],
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_answer_loss_equals_full_loss(tiny_model_dir: Path, dtype: torch.dtype) -> None:
    model, tok = load_model(str(tiny_model_dir), dtype=dtype)
    assert supports_logits_to_keep(model)
    batch = _batch(tok)
    with torch.no_grad():
        full = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        kept = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            logits_to_keep=batch["logits_to_keep"],
        )
    n_labels = int((batch["labels"] != -100).sum())
    assert kept.logits.shape == (
        n_labels,
        model.config.vocab_size,
    )  # only answer positions projected
    ours = answer_loss(kept, batch["labels"])
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert ours.item() == pytest.approx(full.loss.item(), rel=tol, abs=tol)
    # with the Trainer's accumulated label count: sum / count, the same number here
    assert answer_loss(kept, batch["labels"], num_items_in_batch=n_labels).item() == pytest.approx(
        ours.item(), rel=1e-6
    )


def test_gradients_match(tiny_model_dir: Path) -> None:
    model, tok = load_model(str(tiny_model_dir))
    batch = _batch(tok)
    model.train()
    model.zero_grad()
    model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
    ).loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        logits_to_keep=batch["logits_to_keep"],
    )
    answer_loss(out, batch["labels"]).backward()
    for n, p in model.named_parameters():
        if n in ref:
            assert torch.allclose(p.grad, ref[n], atol=1e-6), n
