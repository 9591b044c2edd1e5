"""The answer-only loss equals the model's own full-logits loss on the same batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ragtune.models import load_model
from ragtune.prompt.encode import encode_example
from ragtune.prompt.grounded import PromptConfig
from ragtune.train.batches import collate
from ragtune.train.loss import answer_loss, answer_mask, supports_logits_to_keep


def _batch(tok: object, examples: list) -> dict[str, torch.Tensor]:
    rows = [encode_example(tok, e, PromptConfig(), 512) for e in examples]
    return collate(tok.pad_token_id, answer_logits_only=True)(rows)  # type: ignore[attr-defined]


def test_mask_marks_positions_that_predict_labels() -> None:
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    assert answer_mask(labels).tolist() == [
        [False, True, True, False, False],
        [True, False, False, False, False],
    ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_answer_loss_equals_full_loss(
    tiny_model_dir: Path, dtype: torch.dtype, qa_examples: list
) -> None:
    model, tok = load_model(str(tiny_model_dir), dtype=dtype)
    assert supports_logits_to_keep(model)
    batch = _batch(tok, qa_examples)
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


def test_gradients_match(tiny_model_dir: Path, qa_examples: list) -> None:
    model, tok = load_model(str(tiny_model_dir))
    batch = _batch(tok, qa_examples)
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


def test_refusal_targets_are_weighted_and_the_rest_is_unchanged(
    tiny_model_dir: Path, qa_examples: list
) -> None:
    from ragtune.train.batches import collate_packed
    from ragtune.train.loss import target_weights, weighted_answer_loss

    model, tok = load_model(str(tiny_model_dir))
    cfg = PromptConfig()
    refusals = [tok(cfg.refusal_en, add_special_tokens=False)["input_ids"]]
    rows = [encode_example(tok, e, cfg, 512) for e in qa_examples]
    for batch in (_batch(tok, qa_examples), collate_packed(True)(rows)):
        with torch.no_grad():
            kept = model(**{k: v for k, v in batch.items() if k != "labels"})
        labels = batch["labels"]
        w = target_weights(labels, refusals, 0.25)
        n_refusal = len(refusals[0]) + 1  # the sentence and the end-of-turn marker after it
        # one unanswerable example: exactly its reply tokens get the weight
        assert (
            int((w == 0.25).sum()) >= len(refusals[0]) and int((w == 0.25).sum()) <= n_refusal + 1
        )
        assert int((w == 1.0).sum()) == w.numel() - int((w == 0.25).sum())
        # weight 1 is the plain loss; a lower weight lowers exactly the refusal part
        same = weighted_answer_loss(refusals, 1.0)(kept, labels)
        assert same.item() == pytest.approx(answer_loss(kept, labels).item(), rel=1e-6)
        per_token = torch.nn.functional.cross_entropy(
            kept.logits.float(), labels[:, 1:][labels[:, 1:] != -100], reduction="none"
        )
        lighter = weighted_answer_loss(refusals, 0.25)(kept, labels)
        assert lighter.item() == pytest.approx((per_token * w).sum().item() / w.numel(), rel=1e-5)
        assert lighter.item() < same.item()


def test_the_balanced_preset_weighs_refusals_by_half_unless_told() -> None:
    from ragtune.train.config import TrainConfig, resolve_defaults

    assert resolve_defaults(TrainConfig(data="x"), 100).refusal_loss_weight == 0.5
    assert resolve_defaults(TrainConfig(data="x", preset="quick"), 100).refusal_loss_weight == 1.0
    assert (
        resolve_defaults(TrainConfig(data="x", refusal_loss_weight=1.0), 100).refusal_loss_weight
        == 1.0
    )
