"""Extractive decoding only ever emits a span of the passages or the refusal sentence."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ragtune.eval.answer import Question, answer_all
from ragtune.generation.abstain import Threshold
from ragtune.generation.extractive import SpanConstraint, words_of
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


def test_words_begin_and_end_between_words_only() -> None:
    def ends(pieces: list[str]) -> set[int]:
        return set(words_of(pieces).ends)

    assert ends([" The", " Norm", "ans", " were", ",", " in"]) == {0, 1, 3, 4, 5}
    assert ends(["1", "9", "6", "2", "."]) == {0, 4}  # no answer "19" of 1962
    assert ends([" 1", ",", "0", "0", "0", " m"]) == {0, 5}  # nor "1" of 1,000
    assert ends(["Zhen", "'s"]) == {0, 1}  # "Zhen" of "Zhen's" is a word
    assert ends(["北京", "大学", "位"]) == {0, 1, 2}  # each character is a word
    assert ends(["서울", "특별", "시", " 에"]) == {0, 3}  # Korean: words between spaces
    assert ends([" cafe", "\u0301", " au"]) == {0, 2}  # a combining accent is in its word
    # a character whose bytes tokens share is never cut; whole ones around it may be
    assert ends(["北", "\ufffd", "\ufffd", "京"]) == {0, 1, 3}
    assert ends([" \ufffd", "\ufffd", "al", " is"]) == {0, 3}  # " Ħal": not at "al"
    # an answer may stop before a lone space, but not begin with it
    words = words_of([" in", " ", "Marlowe", "."])
    assert set(words.ends) == {0, 1, 2, 3} and set(words.starts) == {0, 2, 3}


def test_a_split_character_or_a_respaced_token_has_no_twin() -> None:
    from ragtune.generation.extractive import word_starts

    vocab = {"in": 7, "In": 6, "\ufffd": 8, "▁in": 1}

    def encode(texts: list[str]) -> list[list[int]]:
        return [[vocab[t]] if t in vocab else [9, 9] for t in texts]

    # " in" -> "in" and "In"; nothing for a split character ("�" would be U+FFFD itself)
    assert word_starts([1, 2], [" in", " \ufffd"], encode) == {0: [(7,), (6,)]}
    assert word_starts([7], [" in"], encode) == {0: [(6,)]}  # "in" is the token itself
    vocab["iPhone"] = 5  # a capital inside the word: no "IPhone"; "ß" upper-cases to two
    assert word_starts([3], [" iPhone"], encode) == {0: [(5,)]}
    assert word_starts([3], [" ßa"], encode) == {0: [(9, 9)]}


def test_answers_begin_and_end_between_words() -> None:
    # tokens: " The"=1 " Norm"=2 "ans"=3 " were"=4 ","=5
    words = words_of([" The", " Norm", "ans", " were", ","])
    c = SpanConstraint([[1, 2, 3, 4, 5], [9, 8]], [False, True], words=[words, None])
    assert c.next_tokens() == {1, 2, 4, 5, 9}  # not "ans", the middle of " Normans"
    c.advance(2)
    assert c.next_tokens() == {3} and not c.may_stop  # " Norm" alone is no word
    c.advance(3)
    assert c.may_stop
    free = SpanConstraint([[1, 2, 3, 4, 5]], [False])  # without boundaries: anywhere
    assert 3 in free.next_tokens()
    free.advance(2)
    assert free.may_stop


def test_a_word_may_begin_spelled_in_other_tokens() -> None:
    # " Puritan"=5 " ministers"=6; the answer spells the first word "Pur"=11 "itan"=12
    c = SpanConstraint([[5, 6, 7]], [False], [{0: [(11, 12)]}])
    assert {5, 11} <= c.next_tokens()
    c.advance(11)
    assert c.next_tokens() == {12} and not c.may_stop  # in the middle of the word
    c.advance(12)
    assert c.next_tokens() == {6} and c.may_stop  # and on as the passage goes
    late = SpanConstraint([[5, 6, 7, 5]], [False], [{2: [(11, 12)]}])
    late.advance(6)  # the answer is now at position 2, where the alias stands
    assert 11 not in late.next_tokens()  # a spelling stands in for the first token only


def test_an_answer_may_stop_where_any_of_its_matches_ends_a_word() -> None:
    # " Norm" is the start of " Normans" in one place and a word of its own in another
    words = words_of([" Norm", "ans", " and", " Norm", ","])
    c = SpanConstraint([[2, 3, 6, 2, 5]], [False], words=[words])
    c.advance(2)
    assert c.may_stop and c.next_tokens() == {3, 5}


def test_the_refusal_is_copied_whole() -> None:
    from ragtune.generation.extractive import copy_constraint

    def encode(texts: list[str]) -> list[list[int]]:
        return [[99, 99] for _ in texts]  # no twins

    c = copy_constraint([[1, 2], [9, 8, 7]], [[" A", " b"], ["The", " context", " not"]], encode)
    c.advance(9)
    assert not c.may_stop  # "The" of the refusal sentence is no answer
    c.advance(8)
    c.advance(7)
    assert c.may_stop


def test_a_word_may_begin_the_answer_without_its_leading_space(tiny_model_dir: Path) -> None:
    from ragtune.generation.extractive import token_pieces, word_starts

    _, tok = load_model(str(tiny_model_dir))

    def encode(texts: list[str]) -> list[list[int]]:
        return [list(i) for i in tok(texts, add_special_tokens=False)["input_ids"]]

    ids = encode([" in Paris"])[0]
    twins = word_starts(ids, token_pieces(tok, ids), encode)
    bare = tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids[0])[1:])
    assert twins[0][0] == (bare,)  # " in" -> "in" (and "In")
    c = SpanConstraint([ids], [False], [twins])
    assert bare in c.next_tokens()
    c.advance(bare)
    assert c.next_tokens() == {ids[1]}  # and the answer goes on as the passage does
    c2 = SpanConstraint([ids], [False], [twins])
    c2.advance(ids[0])
    assert bare not in c2.next_tokens()  # a twin stands in for the first token only


def test_pieces_keep_the_leading_space_a_sentencepiece_decode_drops() -> None:
    from ragtune.generation.extractive import token_pieces

    class SentencePieceLike:  # decodes a lone "▁Paris" as "Paris", as Llama's tokenizer does
        vocab = ["▁The", "▁Par", "is"]

        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return [self.vocab[i] for i in ids]

        def decode(self, ids: list[int]) -> str:
            return "".join(self.vocab[i] for i in ids).replace("▁", " ").lstrip()

    pieces = token_pieces(SentencePieceLike(), [0, 1, 2])
    assert pieces == [" The", " Par", "is"]
    assert set(words_of(pieces).starts) == {0, 1}  # "is" continues " Par"


@pytest.mark.parametrize("threshold", [None, Threshold(1.0)])
def test_answers_are_spans_of_their_passages_or_the_refusal(
    tiny_model_dir: Path, threshold: Threshold | None
) -> None:
    model, tok = load_model(str(tiny_model_dir))
    engine = LocalGenerator(model, tok, max_new_tokens=8, batch_size=3, name="tiny")
    free = answer_all(engine, QUESTIONS, CFG)
    gens = answer_all(engine, QUESTIONS, CFG, threshold=threshold, extractive=True)

    def copied(text: str, passages: list[str]) -> bool:  # the first letter may be capitalized
        return any(t in p for t in (text, text[:1].lower() + text[1:]) for p in passages)

    for q, g in zip(QUESTIONS, gens, strict=True):
        refusal = CFG.refusal_zh if q.id == "c" else CFG.refusal_en
        assert g.new_tokens > 0
        assert copied(g.text, q.passages) or refusal.startswith(g.text), g.text
        if threshold is not None:  # the threshold refuses: decoding copies passages only
            assert g.unrefused is not None and copied(g.unrefused, q.passages), g.unrefused
        if q.id != "c" and not refusal.startswith(g.text):  # English: whole words only
            word = rf"(?<![A-Za-z0-9])(?i:{re.escape(g.text[:1])}){re.escape(g.text[1:])}"
            assert any(re.search(word + "(?![A-Za-z0-9])", p) for p in q.passages), g.text
    # the random tiny model answers off the passages when free: the constraint did the work
    assert not all(copied(g.text, q.passages) for q, g in zip(QUESTIONS, free))


def test_local_decoding_keeps_to_whole_words(tiny_model_dir: Path) -> None:
    import torch

    model, tok = load_model(str(tiny_model_dir))
    engine = LocalGenerator(model, tok, max_new_tokens=8, batch_size=1, name="tiny")
    passage = "Founded by Quillzorbax Tessafen."  # unknown words: split into pieces
    ids = tok(passage, add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    quill, mid = ids[pieces.index(" Quill")], ids[pieces.index(" Quill") + 1]
    assert words_of(pieces).ends != set(range(len(ids)))  # the test needs a split word
    process = engine._extractive([[passage, CFG.refusal_en]], prompt_len=3)
    prompt = torch.zeros((1, 3), dtype=torch.long)
    first = process(prompt, torch.zeros((1, len(tok))))
    assert first[0, mid] == -float("inf") and first[0, quill] == 0.0  # no start mid-word
    after = process(torch.cat([prompt, torch.tensor([[quill]])], 1), torch.zeros((1, len(tok))))
    assert after[0, mid] == 0.0  # the word goes on ...
    assert all(after[0, s] == -float("inf") for s in engine.stop_ids)  # ... and cannot stop


def test_under_a_threshold_the_refusal_is_no_span_to_copy() -> None:
    from ragtune.generation.base import Generation
    from ragtune.generation.grounded import generate_grounded

    class Recorder:  # a Generator that keeps the spans it was asked to copy from
        spans: list[list[str]] | None = None

        def generate(self, batch, refusals=None, spans=None):  # type: ignore[no-untyped-def]
            self.spans = spans
            return [Generation("x", 1, 0.0, 1) for _ in batch]

    items = [("Who?", ["Ada Quill founded it."])]
    engine: Any = Recorder()
    generate_grounded(engine, items, CFG, threshold=Threshold(0.5), extractive=True)
    assert engine.spans == [["Ada Quill founded it.", ""]]  # the threshold refuses
    generate_grounded(engine, items, CFG, extractive=True)
    assert engine.spans == [["Ada Quill founded it.", CFG.refusal_en]]
