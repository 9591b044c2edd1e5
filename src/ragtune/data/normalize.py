"""Text normalization for data checks and cleaning: answer-in-context tests and duplicate keys.

Both `check` and `prepare` compare texts through these functions so they agree on what is a
duplicate and what is a missing answer. Normalizing is Unicode NFKC, case folding, punctuation
and symbols to spaces, and collapsed whitespace. English answers must match on word boundaries
("one" is not in "someone"); Chinese has no spaces, so where the answer or the context is
Chinese it is a plain substring test with spaces removed.

    answer_in_context("the Normans", ["... The Normans (Norman: ...) were ..."])  # True
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ragtune.data.example import Example
from ragtune.prompt import language

_PUNCT = re.compile(r"[^\w\s]|_")


@lru_cache(maxsize=65536)  # contexts repeat across their questions (about 5 per SQuAD paragraph)
def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


@lru_cache(maxsize=65536)
def _spaced(text: str) -> bool:
    """Whether words in `text` are separated by spaces (not Chinese)."""
    return language(text) != "zh"


def answer_in_context(answer: str, contexts: list[str]) -> bool:
    a = normalize(answer)
    if not a:
        return False
    for c in contexts:
        if _spaced(answer) and _spaced(c):
            if f" {a} " in f" {normalize(c)} ":
                return True
        # "1998" must be found in "1998年": no word boundaries in Chinese text.
        elif a.replace(" ", "") in normalize(c).replace(" ", ""):
            return True
    return False


def found_answers(ex: Example) -> list[str]:
    """The gold answers of `ex` that occur in its contexts (all of them, ideally)."""
    return [a for a in ex.answers if answer_in_context(a, ex.contexts)]


def question_key(ex: Example) -> str:
    return normalize(ex.question)


def context_key(text: str) -> str:
    return normalize(text)


def example_key(ex: Example) -> tuple[str, ...]:
    """Same question on the same contexts: the duplicate test."""
    return (question_key(ex), *sorted(context_key(c) for c in ex.contexts))


def answer_key(ex: Example) -> tuple[str, ...]:
    """What an example teaches: its answers (order-free), or refusal when unanswerable."""
    if not ex.answerable:
        return ("<unanswerable>",)
    return tuple(sorted({normalize(a) for a in ex.answers}))
