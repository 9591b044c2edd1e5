"""Offline demo data set for `ragtune demo`, generated from templates this package ships.

Every document is made up here, so the demo needs no download and the base model cannot know
the answers from pre-training: fictional entities (companies, towns, research stations, ships,
festivals, composers, gadgets, mountains, colleges) described in varied prose, plus real,
well-known things with one fact swapped for a false value. About 15% of documents (and their
questions) are in Chinese. Each example has one of three kinds (`Example.kind`):

    answerable      the answer is a short span copied verbatim from the document
    unanswerable    asks about an attribute of the same entity that the document leaves out
    counterfactual  asks for the swapped fact; the gold answer is the document's false value,
                    so only a model that follows the context (not its memory) gets it right

About a quarter of the examples also carry a distractor document about another entity. Train
and eval share no document, no entity name and no counterfactual fact; group = document id.

    train, eval = build_demo_set(seed=0)      # 486 train and 96 eval examples
    demo = generate_demo(seed=0)              # the same, plus each document's metadata
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ragtune.demo import facts as demo_facts
from ragtune.demo import templates_en as en_templates
from ragtune.demo import templates_zh as zh_templates
from ragtune.example import Example

ANSWERABLE_PER_DOC = 3  # questions about stated attributes, per fictional document
ZH_SHARE = 0.15  # fraction of each split's fictional and counterfactual documents in Chinese
TWO_CONTEXT_SHARE = 0.25  # fraction of examples that also carry a distractor document
MAX_SENTENCES = 6  # per document, intro included
MIN_LENGTH = {"en": 60, "zh": 70}  # words (en) or characters (zh); filler pads up to this


@dataclass(frozen=True)
class _SplitPlan:
    counterfactual_share: float
    """Fraction of the split's documents that are counterfactual (one question each)."""
    unanswerable_per_doc: tuple[int, ...]
    """Unanswerable questions per fictional document, cycled: (1, 2) averages 1.5."""


# Train, 164 docs: 92 fictional x (3 + 1.5) + 72 counterfactual = 486 examples (57/28/15 %).
# Eval is balanced for measurement, 32 docs: 16 x (3 + 2) + 16 = 96 examples (48/32/16).
_PLANS = {"train": _SplitPlan(0.44, (1, 2)), "eval": _SplitPlan(0.5, (2,))}


@dataclass
class DemoDoc:
    """One generated document and what the generator knows about it (for tests and reports)."""

    id: str
    split: str
    lang: str
    """"en" or "zh"."""
    domain: str
    """Template domain ("company", "town", ...) or "counterfactual"."""
    entity: str
    """The entity's name as written in the text."""
    text: str
    stated: dict[str, str]
    """Attribute -> value exactly as written in the text."""
    unstated: list[str]
    """Attributes of the domain that the text leaves out (unanswerable questions ask these)."""
    names: list[str]
    """Every entity name in the text (invented names, or the real subject of a counterfactual)."""
    true_values: dict[str, str] = field(default_factory=dict)
    """Counterfactual only: attribute -> the real-world value, which the text must not contain."""


@dataclass
class DemoSet:
    train: list[Example]
    eval: list[Example]
    docs: list[DemoDoc]


def build_demo_set(
    seed: int = 0, n_train_docs: int = 164, n_eval_docs: int = 32
) -> tuple[list[Example], list[Example]]:
    """(train, eval) examples, identical for the same arguments; see the module docstring."""
    demo = generate_demo(seed, n_train_docs, n_eval_docs)
    return demo.train, demo.eval


def generate_demo(seed: int = 0, n_train_docs: int = 164, n_eval_docs: int = 32) -> DemoSet:
    """Both splits plus every document's metadata; example ids are "<doc id>/<attribute>"."""
    if n_train_docs < 1 or n_eval_docs < 1:
        raise ValueError("n_train_docs and n_eval_docs must be at least 1")
    rng = random.Random(seed)
    names = _Names(rng)  # shared by both splits, so no invented name appears in both
    sizes = {"train": n_train_docs, "eval": n_eval_docs}
    counts = {split: _doc_counts(n, _PLANS[split]) for split, n in sizes.items()}
    facts = _split_facts(rng, counts["eval"])
    out: dict[str, list[Example]] = {}
    docs: list[DemoDoc] = []
    for split in ("train", "eval"):
        split_docs, examples = _build_split(split, counts[split], facts[split], rng, names)
        docs += split_docs
        out[split] = examples
    return DemoSet(train=out["train"], eval=out["eval"], docs=docs)


def _doc_counts(n_docs: int, plan: _SplitPlan) -> dict[tuple[str, str], int]:
    """(document type, language) -> number of documents."""
    n_cf = round(n_docs * plan.counterfactual_share)
    n_fict = n_docs - n_cf
    n_fict_zh, n_cf_zh = round(n_fict * ZH_SHARE), round(n_cf * ZH_SHARE)
    return {
        ("fictional", "en"): n_fict - n_fict_zh,
        ("fictional", "zh"): n_fict_zh,
        ("counterfactual", "en"): n_cf - n_cf_zh,
        ("counterfactual", "zh"): n_cf_zh,
    }


def _split_facts(
    rng: random.Random, eval_counts: dict[tuple[str, str], int]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Deal the counterfactual facts to eval (one per eval document) and train (the rest)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {"train": {}, "eval": {}}
    for lang, facts in (("en", demo_facts.FACTS_EN), ("zh", demo_facts.FACTS_ZH)):
        pool = list(facts)
        rng.shuffle(pool)
        # At least a quarter goes to eval so it measures several facts; at most half, so
        # train keeps most of the variety.
        k = min(max(eval_counts[("counterfactual", lang)], len(pool) // 4), len(pool) // 2)
        out["eval"][lang], out["train"][lang] = pool[:k], pool[k:]
    return out


def _build_split(
    split: str,
    counts: dict[tuple[str, str], int],
    facts: dict[str, list[dict[str, Any]]],
    rng: random.Random,
    names: _Names,
) -> tuple[list[DemoDoc], list[Example]]:
    plan = _PLANS[split]
    slots = [key for key, n in counts.items() for _ in range(n)]
    rng.shuffle(slots)
    domains = {"en": _cycle(rng, en_templates.DOMAINS), "zh": _cycle(rng, zh_templates.DOMAINS)}
    fact_iter = {lang: _cycle(rng, pool) for lang, pool in facts.items()}
    # A fact reused within a split gets a different false value each time (seeded order), so
    # its documents differ and the model sees that the context, not memory, sets the answer.
    false_values: dict[str, list[str]] = {}  # fact key -> false values not yet used
    docs: list[DemoDoc] = []
    examples: list[Example] = []
    n_fictional = 0
    for i, (doc_type, lang) in enumerate(slots):
        doc_id = f"demo-{split}-{i:03d}"
        if doc_type == "fictional":
            doc = _fictional_doc(doc_id, split, lang, next(domains[lang]), rng, names)
            k_unanswerable = plan.unanswerable_per_doc[n_fictional % len(plan.unanswerable_per_doc)]
            examples += _fictional_examples(doc, k_unanswerable, rng)
            n_fictional += 1
        else:
            fact = next(fact_iter[lang])
            if not false_values.get(fact["key"]):
                false_values[fact["key"]] = rng.sample(fact["false"], len(fact["false"]))
            doc = _fact_doc(doc_id, split, lang, fact, false_values[fact["key"]].pop(), rng)
            question = rng.choice(fact["ask"])
            answer = doc.stated[fact["key"]]
            examples.append(_example(doc, fact["key"], question, [answer], "counterfactual"))
        docs.append(doc)
    _add_distractors(examples, docs, rng)
    rng.shuffle(examples)
    return docs, examples


# --- fictional documents ------------------------------------------------------------------


def _templates(lang: str) -> Any:
    return zh_templates if lang == "zh" else en_templates


def _fictional_doc(
    doc_id: str, split: str, lang: str, domain: dict[str, Any], rng: random.Random, names: _Names
) -> DemoDoc:
    entity = _entity_name(domain["name"], lang, rng, names)
    invented = [entity]  # every invented name in the text, for the split-disjointness check
    attributes = list(domain["attributes"])
    rng.shuffle(attributes)
    # Leave at least two attributes out, so every document has something to refuse.
    n_stated = rng.randint(ANSWERABLE_PER_DOC, len(attributes) - 2)
    stated: dict[str, str] = {}
    body: list[str] = []
    for attr in attributes[:n_stated]:
        spec = domain["attributes"][attr]
        value, is_name = _value(spec["value"], lang, rng, names)
        if is_name:
            invented.append(value)
        stated[attr] = value
        body.append(rng.choice(spec["say"]).format(name=entity, value=value))
    intro = rng.choice(domain["intro"]).format(name=entity)
    fillers = rng.sample(domain["filler"], len(domain["filler"]))
    # One distractor sentence when there is room, more while the text is still short.
    while fillers and 1 + len(body) < MAX_SENTENCES:
        if len(body) > n_stated and _length([intro, *body], lang) >= MIN_LENGTH[lang]:
            break
        body.append(fillers.pop().format(name=entity))
    rng.shuffle(body)
    return DemoDoc(
        id=doc_id,
        split=split,
        lang=lang,
        domain=domain["domain"],
        entity=entity,
        text=_join([intro, *body], lang),
        stated=stated,
        unstated=attributes[n_stated:],
        names=invented,
    )


def _fictional_examples(doc: DemoDoc, k_unanswerable: int, rng: random.Random) -> list[Example]:
    domain = next(d for d in _templates(doc.lang).DOMAINS if d["domain"] == doc.domain)
    asks = {attr: spec["ask"] for attr, spec in domain["attributes"].items()}
    out = []
    for attr in rng.sample(sorted(doc.stated), ANSWERABLE_PER_DOC):
        question = rng.choice(asks[attr]).format(name=doc.entity)
        out.append(_example(doc, attr, question, [doc.stated[attr]], "answerable"))
    for attr in rng.sample(doc.unstated, min(k_unanswerable, len(doc.unstated))):
        question = rng.choice(asks[attr]).format(name=doc.entity)
        out.append(_example(doc, attr, question, [], "unanswerable"))
    return out


def _entity_name(pattern: str, lang: str, rng: random.Random, names: _Names) -> str:
    pools = _templates(lang).POOLS

    def fill(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in ("brand", "place"):
            return names.word(lang, key)
        if key == "person":
            return names.person(lang)
        return str(rng.choice(pools[key]))

    return re.sub(r"\{(\w+)\}", fill, pattern)


def _value(spec: str, lang: str, rng: random.Random, names: _Names) -> tuple[str, bool]:
    """Render a value spec (see `ragtune.demo.templates_en`); True when the value is an invented name."""
    kind, _, rest = spec.partition(" ")
    zh = lang == "zh"
    if kind == "person":
        return names.person(lang), True
    if kind == "place":
        return names.word(lang, "place") + ("市" if zh else ""), True
    if kind == "named":
        suffix = rng.choice(rest.split("|"))
        word = names.word(lang, "place")
        return (f"{word}{suffix}" if zh else f"{word} {suffix}"), True
    if kind == "year":
        first, last = (int(x) for x in rest.split()) if rest else (1820, 2015)
        year = rng.randint(first, last)
        return (f"{year}年" if zh else str(year)), False
    if kind in ("num", "price"):
        lo, hi, *unit = rest.split()
        n = rng.randint(int(lo), int(hi))
        if n >= 10_000:
            n = round(n, -2)  # large counts read naturally when rounded: 42,300 not 42,317
        if kind == "price":
            return (f"{n}元" if zh else f"${n}"), False
        if zh:
            return f"{n}{''.join(unit)}", False
        return f"{n:,}" + (f" {unit[0]}" if unit else ""), False
    if kind == "date":
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        return (f"{month}月{day}日" if zh else f"{day} {en_templates.MONTHS[month - 1]}"), False
    if kind == "title":
        return (
            f"The {rng.choice(en_templates.TITLE_ADJ)} {rng.choice(en_templates.TITLE_NOUN)}",
            False,
        )
    if kind == "pool":
        return str(rng.choice(_templates(lang).POOLS[rest])), False
    raise ValueError(f"unknown value spec {spec!r} in the demo templates")


# --- counterfactual documents -------------------------------------------------------------


def _fact_doc(
    doc_id: str, split: str, lang: str, fact: dict[str, Any], false: str, rng: random.Random
) -> DemoDoc:
    # The fact names the subject, so it opens the text; the extras refer back to it ("It ...").
    extras = rng.sample(fact["extra"], len(fact["extra"]))
    sentences = [fact["fact"].format(value=false), *extras]
    return DemoDoc(
        id=doc_id,
        split=split,
        lang=lang,
        domain="counterfactual",
        entity=fact["subject"],
        text=_join(sentences, lang),
        stated={fact["key"]: false},
        unstated=[],
        names=[fact["subject"]],
        true_values={fact["key"]: fact["true"]},
    )


# --- shared -------------------------------------------------------------------------------


def _example(doc: DemoDoc, attr: str, question: str, answers: list[str], kind: str) -> Example:
    return Example(
        id=f"{doc.id}/{attr}",
        question=question,
        contexts=[doc.text],
        answers=answers,
        answerable=bool(answers),
        group=doc.id,
        kind=kind,
    )


def _add_distractors(examples: list[Example], docs: list[DemoDoc], rng: random.Random) -> None:
    """Give a quarter of the examples a second passage: another entity, same language."""
    by_id = {doc.id: doc for doc in docs}
    for ex in rng.sample(examples, round(len(examples) * TWO_CONTEXT_SHARE)):
        own = by_id[ex.group]
        # Not the same entity: a reused counterfactual fact with another false value would
        # make the two passages contradict each other.
        others = [d for d in docs if d.lang == own.lang and d.entity != own.entity]
        if not others:
            continue
        ex.contexts.insert(rng.randint(0, 1), rng.choice(others).text)


def _cycle(rng: random.Random, items: list[Any]) -> Iterator[Any]:
    """Endless iterator over `items`, reshuffled on every pass (balanced, yet not ordered)."""
    if not items:
        return
    while True:
        batch = list(items)
        rng.shuffle(batch)
        yield from batch


def _join(sentences: list[str], lang: str) -> str:
    return "".join(sentences) if lang == "zh" else " ".join(sentences)


def _length(sentences: list[str], lang: str) -> int:
    return len(_join(sentences, lang)) if lang == "zh" else len(" ".join(sentences).split())


class _Names:
    """Invented names, never repeated and never a substring of one another.

    So a name found in a text identifies one entity, and since both splits draw from one
    instance, no name (entity, founder, town, river ...) appears in both train and eval.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: list[str] = []

    def _claim(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            name = make()
            if not any(name in u or u in name for u in self.used):
                self.used.append(name)
                return name
        raise RuntimeError("demo name pool exhausted: add syllables to the demo templates")

    def word(self, lang: str, style: str) -> str:
        r = self.rng
        if lang == "zh":
            return self._claim(lambda: "".join(r.sample(zh_templates.WORD_CHARS, 2)))
        ends = en_templates.PLACE_END if style == "place" else en_templates.BRAND_END
        t = en_templates
        return self._claim(
            lambda: r.choice(t.WORD_START) + r.choice(t.WORD_MIDDLE) + r.choice(ends)
        )

    def person(self, lang: str) -> str:
        r = self.rng
        if lang == "zh":
            z = zh_templates
            return self._claim(
                lambda: r.choice(z.SURNAMES) + "".join(r.sample(z.GIVEN_CHARS, r.randint(1, 2)))
            )
        t = en_templates
        return self._claim(
            lambda: (
                f"{r.choice(t.FIRST_START)}{r.choice(t.FIRST_END)} "
                f"{r.choice(t.WORD_START)}{r.choice(t.SURNAME_END)}"
            )
        )
