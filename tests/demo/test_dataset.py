"""The offline demo data set: deterministic, sized and mixed as documented, every gold answer
copied from its document, every refusal justified by the generator's own metadata, and train
and eval disjoint in documents, text, entity names and counterfactual facts."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest

from ragtune.demo import facts as demo_facts
from ragtune.demo.dataset import DemoDoc, DemoSet, build_demo_set, generate_demo
from ragtune.example import Example
from ragtune.text import language


@pytest.fixture(scope="module")
def demo() -> DemoSet:
    return generate_demo(seed=0)


def _docs(demo: DemoSet) -> dict[str, DemoDoc]:
    return {d.id: d for d in demo.docs}


def _attr(ex: Example) -> str:
    return ex.id.split("/", 1)[1]


def _share(examples: list[Example], pred) -> float:
    return sum(map(pred, examples)) / len(examples)


def _mentions(text: str, name: str) -> bool:
    """Whole-word, case-insensitive for Latin names; plain substring for Chinese ones."""
    if language(name) == "zh":
        return name in text
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def test_same_seed_gives_same_data_and_another_seed_differs():
    def dump(split: tuple[list[Example], list[Example]]) -> list[list[dict]]:
        return [[e.to_dict() for e in part] for part in split]

    assert dump(build_demo_set(seed=0)) == dump(build_demo_set(seed=0))
    assert dump(build_demo_set(seed=0)) != dump(build_demo_set(seed=1))


def test_default_sizes_and_kind_mix(demo):
    assert (len(demo.train), len(demo.eval)) == (486, 96)
    assert 0.50 <= _share(demo.train, lambda e: e.kind == "answerable") <= 0.62
    assert 0.24 <= _share(demo.train, lambda e: e.kind == "unanswerable") <= 0.36
    assert 0.11 <= _share(demo.train, lambda e: e.kind == "counterfactual") <= 0.19
    # Eval is balanced so each kind's metric rests on enough examples.
    kinds = Counter(e.kind for e in demo.eval)
    assert kinds["answerable"] >= 40 and kinds["unanswerable"] >= 30
    assert kinds["counterfactual"] >= 15
    assert set(kinds) == {"answerable", "unanswerable", "counterfactual"}
    ids = [e.id for e in demo.train + demo.eval]
    assert len(ids) == len(set(ids))


def test_a_quarter_carry_a_distractor_about_another_entity(demo):
    docs = _docs(demo)
    for examples in (demo.train, demo.eval):
        assert 0.2 <= _share(examples, lambda e: len(e.contexts) == 2) <= 0.3
        for ex in examples:
            own = docs[ex.group]
            assert own.text in ex.contexts and len(ex.contexts) in (1, 2)
            for other in (c for c in ex.contexts if c != own.text):
                assert language(other) == own.lang
                assert not _mentions(other, own.entity)


def test_gold_answers_are_short_spans_of_their_own_document(demo):
    docs = _docs(demo)
    for ex in demo.train + demo.eval:
        doc = docs[ex.group]
        assert ex.id == f"{doc.id}/{_attr(ex)}"
        assert ex.question.endswith(("?", "？"))
        if ex.kind == "unanswerable":
            assert not ex.answerable and ex.answers == []
            continue
        assert ex.answerable and len(ex.answers) == 1
        answer = ex.answers[0]
        assert answer in doc.text, (ex.id, answer)
        if doc.lang == "en":
            assert 1 <= len(answer.split()) <= 6, answer
            assert len(ex.question.split()) <= 14, ex.question
        else:
            assert 1 <= len(answer) <= 8, answer


def test_questions_ask_about_the_documents_entity(demo):
    docs = _docs(demo)
    for ex in demo.train + demo.eval:
        doc = docs[ex.group]
        if ex.kind == "counterfactual":
            continue  # real subjects are often paraphrased ("Beethoven")
        assert doc.entity in ex.question, (ex.question, doc.entity)


def test_unanswerable_questions_ask_for_an_attribute_the_document_leaves_out(demo):
    docs = _docs(demo)
    asked: dict[str, set[str]] = defaultdict(set)  # kind -> "domain.attribute" asked
    for ex in demo.train + demo.eval:
        doc, attr = docs[ex.group], _attr(ex)
        asked[ex.kind].add(f"{doc.domain}.{attr}")
        if ex.kind == "unanswerable":
            assert attr in doc.unstated and attr not in doc.stated
        elif ex.kind == "answerable":
            assert ex.answers == [doc.stated[attr]]
    # Attributes that must be refused are also asked (elsewhere) with an answer, so the
    # question's wording does not tell the model which to do; only the context does.
    both = asked["unanswerable"] & asked["answerable"]
    assert len(both) >= 0.9 * len(asked["unanswerable"])


def test_counterfactual_answers_follow_the_context_not_reality(demo):
    docs = _docs(demo)
    false_values: dict[str, set[str]] = defaultdict(set)
    cf = [e for e in demo.train + demo.eval if e.kind == "counterfactual"]
    for ex in cf:
        doc, key = docs[ex.group], _attr(ex)
        real = doc.true_values[key]
        assert ex.answers == [doc.stated[key]] and ex.answers[0] != real
        assert not _mentions(doc.text, real), (doc.text, real)
        assert _mentions(doc.text, doc.entity)
        false_values[key].add(ex.answers[0])
    # A fact reused within train gets a different false value every time.
    uses = Counter(_attr(e) for e in cf)
    assert all(len(false_values[k]) == n for k, n in uses.items())
    assert any(language(e.question) == "zh" for e in cf)


def test_counterfactual_facts_are_many_and_split_between_train_and_eval(demo):
    facts = demo_facts.FACTS_EN + demo_facts.FACTS_ZH
    keys = [f["key"] for f in facts]
    assert len(set(keys)) == len(keys) >= 40
    for f in facts:
        assert f["fact"].count("{value}") == 1 and f["true"] not in f["false"]
    train = {_attr(e) for e in demo.train if e.kind == "counterfactual"}
    eval_ = {_attr(e) for e in demo.eval if e.kind == "counterfactual"}
    assert not train & eval_
    assert len(train) >= 30 and len(eval_) >= 12


def test_train_and_eval_share_no_document_text_or_entity_name(demo):
    split_docs = {s: [d for d in demo.docs if d.split == s] for s in ("train", "eval")}
    assert {e.group for e in demo.train}.isdisjoint(e.group for e in demo.eval)
    train_contexts = {c for e in demo.train for c in e.contexts}
    assert train_contexts.isdisjoint(c for e in demo.eval for c in e.contexts)
    for here, there in (("train", "eval"), ("eval", "train")):
        names = {n for d in split_docs[here] for n in d.names}
        assert names, here
        for doc in split_docs[there]:
            leaked = [n for n in names if _mentions(doc.text, n)]
            assert not leaked, (doc.id, leaked)


def test_chinese_is_about_fifteen_percent_and_in_chinese_throughout(demo):
    docs = _docs(demo)
    for examples in (demo.train, demo.eval):
        assert 0.10 <= _share(examples, lambda e: language(e.question) == "zh") <= 0.20
    zh = [e for e in demo.train if language(e.question) == "zh"]
    assert {e.kind for e in zh} == {"answerable", "unanswerable", "counterfactual"}
    for ex in demo.train + demo.eval:
        assert language(ex.question) == docs[ex.group].lang
        assert all(language(c) == docs[ex.group].lang for c in ex.contexts)


def test_documents_are_a_few_sentences_of_natural_length(demo):
    words = []
    for doc in demo.docs:
        if doc.lang == "en":
            n_sentences = len(re.split(r"(?<=[.!?])\s+", doc.text))
            words.append(len(doc.text.split()))
            assert 40 <= words[-1] <= 130, doc.text
        else:
            n_sentences = doc.text.count("。")
            assert 50 <= len(doc.text) <= 200, doc.text
        assert 3 <= n_sentences <= 6, doc.text
        assert "{" not in doc.text and "}" not in doc.text
    assert 55 <= sum(words) / len(words) <= 120


def test_other_sizes_keep_the_guarantees():
    demo = generate_demo(seed=3, n_train_docs=20, n_eval_docs=8)
    docs = _docs(demo)
    assert demo.train and demo.eval
    assert {e.group for e in demo.train}.isdisjoint(e.group for e in demo.eval)
    for ex in demo.train + demo.eval:
        assert not ex.answers or ex.answers[0] in docs[ex.group].text
    with pytest.raises(ValueError, match="n_eval_docs"):
        generate_demo(n_eval_docs=0)
