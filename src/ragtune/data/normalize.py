"""Example-level keys and answer checks shared by `data check` and `data prepare`.

Both compare examples through these functions so they agree on what is a duplicate and what
is a missing answer; the text rules themselves (NFKC, case folding, CJK) live in `ragtune.text`.

    example_key(ex) == example_key(other)   # same question on the same contexts
"""

from __future__ import annotations

from ragtune.example import Example
from ragtune.text import answer_in_context, normalize


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
