"""Synthetic unanswerables and counterfactuals: built from the data itself, in English and
Chinese, never from a question's own document, and the rewritten passage says the new answer."""

from __future__ import annotations

import pytest

from ragtune.data.augment import (
    COUNTERFACTUAL_KIND,
    UNANSWERABLE_KIND,
    AugmentSection,
    add_counterfactuals,
    add_unanswerables,
    answer_kind,
)
from ragtune.example import Example
from ragtune.text import answer_in_context, lexical_tokens

DOCS = {
    "eiffel": "The Eiffel Tower in Paris was built in 1889 by Gustave Eiffel for the World's Fair.",
    "liberty": "The Statue of Liberty in New York was dedicated in 1886; Gustave Eiffel built its frame.",
    "london": "Tower Bridge in London was built in 1894 and designed by Horace Jones.",
    "rome": "The Colosseum in Rome was finished in 80 AD under the emperor Titus.",
    "beijing": "北京大学位于北京，创办于1898年，首任校长是孙家鼐。",
    "tsinghua": "清华大学位于北京海淀区，创办于1911年，校长是梅贻琦。",
    "fudan": "复旦大学位于上海，创办于1905年，创始人是马相伯。",
}
QA = [
    ("eiffel", "Who built the Eiffel Tower?", "Gustave Eiffel"),
    ("eiffel", "When was the Eiffel Tower built?", "1889"),
    ("liberty", "When was the Statue of Liberty dedicated?", "1886"),
    ("liberty", "Where is the Statue of Liberty?", "New York"),
    ("london", "When was Tower Bridge built?", "1894"),
    ("london", "Who designed Tower Bridge?", "Horace Jones"),
    ("rome", "Who was emperor when the Colosseum was finished?", "Titus"),
    ("beijing", "北京大学创办于哪一年？", "1898年"),
    ("beijing", "北京大学首任校长是谁？", "孙家鼐"),
    ("tsinghua", "清华大学创办于哪一年？", "1911年"),
    ("tsinghua", "清华大学校长是谁？", "梅贻琦"),
    ("fudan", "复旦大学创办于哪一年？", "1905年"),
    ("fudan", "复旦大学的创始人是谁？", "马相伯"),
]
EXAMPLES = [Example(f"q{i}", q, [DOCS[doc]], [a], group=doc) for i, (doc, q, a) in enumerate(QA)]


def test_unanswerables_come_from_other_documents_and_hold_no_answer() -> None:
    out = add_unanswerables(EXAMPLES, share=1.0, seed=0)
    assert out[: len(EXAMPLES)] == EXAMPLES  # originals kept, in order
    made = out[len(EXAMPLES) :]
    # questions with no word in common with any other document get no look-alike
    assert 9 <= len(made) < len(EXAMPLES)
    source = {e.id: e for e in EXAMPLES}
    for u in made:
        orig = source[u.id.removesuffix("#unanswerable")]
        assert (u.answerable, u.answers, u.kind, u.group) == (
            False,
            [],
            UNANSWERABLE_KIND,
            orig.group,
        )
        assert u.question == orig.question
        own = DOCS[orig.group]
        assert own not in u.contexts  # never the question's own document
        assert not any(answer_in_context(a, u.contexts) for a in orig.answers)
        assert set(lexical_tokens(u.question)) & set(lexical_tokens(u.contexts[0]))
    # ranked by similarity: a Chinese question gets a Chinese passage about a university
    zh = next(u for u in made if u.id == "q7#unanswerable")
    assert zh.contexts[0] in (DOCS["tsinghua"], DOCS["fudan"])
    # "When was Tower Bridge built?" looks most like another "built in" passage
    en = next(u for u in made if u.id == "q4#unanswerable")
    assert en.contexts[0] == DOCS["eiffel"]


def test_share_and_seed_choose_which() -> None:
    a = add_unanswerables(EXAMPLES, share=0.5, seed=1)
    b = add_unanswerables(EXAMPLES, share=0.5, seed=1)
    assert a == b and 0 < len(a) - len(EXAMPLES) <= round(0.5 * len(EXAMPLES))
    assert add_unanswerables(EXAMPLES, share=0.0, seed=1) == EXAMPLES


@pytest.mark.parametrize(
    ("question", "answer", "kind"),
    [
        ("When was it built?", "1889", "year"),
        ("When was it dedicated?", "28 October 1886", "date"),
        ("How many people live there?", "8,336,817", "number"),
        ("Who designed it?", "Horace Jones", "person"),
        ("Where is it?", "New York", "place"),
        ("Which country is it in?", "France", "place"),
        ("What is it made of?", "wrought iron", None),
        ("北京大学创办于哪一年？", "1898年", "year"),
        ("校长是谁？", "梅贻琦", "person"),
        ("它位于哪里？", "上海", "place"),
    ],
)
def test_answer_kinds(question: str, answer: str, kind: str | None) -> None:
    assert answer_kind(question, answer) == kind


def test_counterfactuals_say_the_new_answer_and_not_the_old() -> None:
    out = add_counterfactuals(EXAMPLES, share=1.0, seed=0)
    made = out[len(EXAMPLES) :]
    source = {e.id: e for e in EXAMPLES}
    langs = set()
    for c in made:
        orig = source[c.id.removesuffix("#counterfactual")]
        assert c.kind == COUNTERFACTUAL_KIND and c.answerable and c.question == orig.question
        new = c.answer
        assert new != orig.answer
        assert answer_in_context(new, c.contexts)
        assert not answer_in_context(orig.answer, c.contexts)
        assert answer_kind(orig.question, new) == answer_kind(orig.question, orig.answer)
        langs.add("zh" if "年" in new or len(new) <= 3 else "en")
        # nothing else in the passage changed
        assert c.contexts[0].replace(new, "") == DOCS[orig.group].replace(orig.answer, "")
    assert len(made) >= 8 and langs == {"en", "zh"}


def test_english_substitution_keeps_word_boundaries() -> None:
    ex = Example(
        "p",
        "Where is the tower?",
        ["The tower is in Paris, loved by Parisians."],
        ["Paris"],
        group="a",
    )
    other = Example("r", "Where is the arena?", ["The arena is in Rome."], ["Rome"], group="b")
    out = add_counterfactuals([ex, other], share=1.0, seed=0)
    made = next(e for e in out if e.id == "p#counterfactual")
    assert made.contexts == ["The tower is in Rome, loved by Parisians."]


def test_section_applies_both() -> None:
    out = AugmentSection(unanswerable_share=0.5, counterfactual_share=0.5).apply(EXAMPLES, 0)
    kinds = {e.kind for e in out}
    assert {UNANSWERABLE_KIND, COUNTERFACTUAL_KIND} <= kinds
    with pytest.raises(Exception, match="unanswerable_share"):
        AugmentSection(unanswerable_share=1.5)


def test_augmenting_twice_adds_no_second_copy() -> None:
    once = AugmentSection(unanswerable_share=1.0, counterfactual_share=1.0).apply(EXAMPLES, 0)
    twice = AugmentSection(unanswerable_share=1.0, counterfactual_share=1.0).apply(once, 0)
    ids = [e.id for e in twice]
    assert len(ids) == len(set(ids))
    assert not any(e.id.count("#") > 1 for e in twice)
