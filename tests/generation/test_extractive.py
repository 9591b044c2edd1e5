"""Extractive decoding only ever emits a span of the passages or the refusal sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.eval.answer import Question, answer_all
from ragtune.generation.extractive import SpanConstraint
from ragtune.generation.local import LocalGenerator
from ragtune.models import load_model
from ragtune.prompt.grounded import PromptConfig

CFG = PromptConfig()
QUESTIONS = [
    Question("a", "Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris."]),
    Question(
        "b",
        "Who founded it?",
        ["Marlowe Station was founded in 1962 by Ada Quill.", "It is on the river Tessa."],
    ),
    Question("c", "北京大学在哪里？", ["北京大学位于北京。"]),
]


def test_constraint_follows_every_occurrence() -> None:
    c = SpanConstraint([[1, 2, 3, 2, 4], [9, 8]], [False, True])
    assert c.next_tokens() == {1, 2, 3, 4, 9} and not c.may_stop
    c.advance(2)
    assert c.next_tokens() == {3, 4} and c.may_stop  # both places "2" occurs
    c.advance(4)
    assert c.next_tokens() == set()  # the passage ends: only stopping is left
    refusal = SpanConstraint([[9, 8]], [True])
    refusal.advance(9)
    assert refusal.next_tokens() == {8}


@pytest.mark.parametrize("threshold", [None, 1.0])
def test_answers_are_spans_of_their_passages_or_the_refusal(
    tiny_model_dir: Path, threshold: float | None
) -> None:
    model, tok = load_model(str(tiny_model_dir))
    engine = LocalGenerator(model, tok, max_new_tokens=8, batch_size=3, name="tiny")
    free = answer_all(engine, QUESTIONS, CFG)
    gens = answer_all(engine, QUESTIONS, CFG, threshold=threshold, extractive=True)
    for q, g in zip(QUESTIONS, gens, strict=True):
        refusal = CFG.refusal_zh if q.id == "c" else CFG.refusal_en
        assert g.new_tokens > 0
        assert any(g.text in p for p in q.passages) or refusal.startswith(g.text), g.text
    # the random tiny model answers off the passages when free: the constraint did the work
    assert not all(any(g.text in p for p in q.passages) for q, g in zip(QUESTIONS, free))
