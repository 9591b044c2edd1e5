"""Extractive decoding only ever emits a span of the passages or the refusal sentence."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert ends(["Zhen", "'s"]) == {0, 1}  # "Zhen" of "Zhen's" is a word
    assert ends(["北京", "大学", "位"]) == {0, 1, 2}  # each character is a word
    # a character whose bytes two tokens share is never cut; whole ones around it may be
    assert ends(["北", "\ufffd", "\ufffd", "京"]) == {0, 1, 3}
    # an answer may stop before a lone space, but not begin with it
    words = words_of([" in", " ", "Marlowe", "."])
    assert set(words.ends) == {0, 1, 2, 3} and set(words.starts) == {0, 2, 3}


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


def test_a_word_may_begin_the_answer_without_its_leading_space(tiny_model_dir: Path) -> None:
    from ragtune.generation.extractive import token_pieces, word_starts

    _, tok = load_model(str(tiny_model_dir))

    def encode(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    ids = encode(" in Paris")
    twins = word_starts(token_pieces(tok, ids), encode)
    bare = tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids[0])[1:])
    assert twins.get(0) == bare  # " in" -> "in"
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
    for q, g in zip(QUESTIONS, gens, strict=True):
        refusal = CFG.refusal_zh if q.id == "c" else CFG.refusal_en
        assert g.new_tokens > 0
        assert any(g.text in p for p in q.passages) or refusal.startswith(g.text), g.text
        if q.id != "c" and not refusal.startswith(g.text):  # English: whole words only
            word = rf"(?<![A-Za-z0-9]){re.escape(g.text)}(?![A-Za-z0-9])"
            assert any(re.search(word, p) for p in q.passages), g.text
    # the random tiny model answers off the passages when free: the constraint did the work
    assert not all(any(g.text in p for p in q.passages) for q, g in zip(QUESTIONS, free))


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
