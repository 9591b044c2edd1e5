"""Extractive decoding only ever emits a span of the passages or the refusal sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.eval.answer import Question, answer_all
from ragtune.generation.abstain import Threshold
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


def test_a_word_may_begin_the_answer_without_its_leading_space(tiny_model_dir: Path) -> None:
    from ragtune.generation.extractive import word_starts

    _, tok = load_model(str(tiny_model_dir))
    ids = tok(" in Paris", add_special_tokens=False)["input_ids"]
    twins = word_starts(tok, ids)
    bare = tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids[0])[1:])
    assert twins.get(0) == bare  # " in" -> "in"
    c = SpanConstraint([ids], [False], [twins])
    assert bare in c.next_tokens()
    c.advance(bare)
    assert c.next_tokens() == {ids[1]}  # and the answer goes on as the passage does
    c2 = SpanConstraint([ids], [False], [twins])
    c2.advance(ids[0])
    assert bare not in c2.next_tokens()  # a twin stands in for the first token only


@pytest.mark.parametrize("threshold", [None, Threshold(1.0)])
def test_answers_are_spans_of_their_passages_or_the_refusal(
    tiny_model_dir: Path, threshold: Threshold | None
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
