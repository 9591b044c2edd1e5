"""Examples the data lacks: unanswerable questions and counterfactual passages, built from
the data itself, in English and Chinese.

- **Unanswerable** (`add_unanswerables`): a question paired with passages from *other*
  documents that look relevant to it: the top BM25 matches (bm25s; Chinese cut into words by
  jieba) among every other group's passages, skipping any that holds one of its gold answers.
  The target is the refusal sentence. CMRC 2018 has no unanswerable questions, so without
  this a Chinese user can never teach refusal.
- **Counterfactual** (`add_counterfactuals`): an answerable example whose answer span is
  replaced, everywhere in its passages, by another span of the same kind from the corpus
  (another year, date, number, person or place: entity-substitution knowledge conflicts,
  Longpre et al. 2021); the new span is the gold answer. A model that answers from memory
  gets these wrong; one that reads the passage gets them right.

Both add copies (ids `<id>#unanswerable`, `<id>#counterfactual`, the source's group, kinds
"synthetic_unanswerable" and "counterfactual") and keep the originals. Call them on each side
of a split separately, so held-out examples are built from held-out documents only.

    train = add_unanswerables(train, share=0.3, seed=0)
    train = add_counterfactuals(train, share=0.1, seed=0)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ragtune.config import require
from ragtune.example import Example
from ragtune.text import answer_in_context, language, lexical_tokens, normalize

UNANSWERABLE_KIND = "synthetic_unanswerable"
COUNTERFACTUAL_KIND = "counterfactual"
CANDIDATES = 20
"""BM25 matches looked at per question: the best few are often the question's own document
or hold its answer, and are skipped."""


@dataclass
class AugmentSection:
    unanswerable_share: float = 0.0
    """Add this share of the answerable questions again, on BM25-similar passages from other
    documents, as unanswerable (target: the refusal sentence)."""
    counterfactual_share: float = 0.0
    """Add this share of the answerable examples again with the answer span swapped for
    another of its kind (year, date, number, person, place) from the corpus."""

    def __post_init__(self) -> None:
        require(self, "unanswerable_share", min=0, max=1)
        require(self, "counterfactual_share", min=0, max=1)

    def apply(self, examples: list[Example], seed: int) -> list[Example]:
        """`examples` with both kinds added (from `examples` alone: call per split side)."""
        out = add_unanswerables(examples, self.unanswerable_share, seed)
        return add_counterfactuals(out, self.counterfactual_share, seed) if examples else out


def _pick(examples: Sequence[Example], share: float, seed: int, salt: str) -> list[int]:
    """Indices of a `share` of the answerable examples, drawn with the seed."""
    pool = [i for i, e in enumerate(examples) if e.answerable]
    rng = random.Random(f"{seed}:{salt}")
    return sorted(rng.sample(pool, round(share * len(pool))))


def add_unanswerables(examples: list[Example], share: float, seed: int = 0) -> list[Example]:
    """`examples` plus, for `share` of the answerable ones, the same question on passages
    from other groups ranked by BM25 against it. Questions with no usable passage (every
    match is from their own group or holds an answer) are skipped."""
    if share <= 0:
        return list(examples)
    import bm25s

    passages: list[str] = []
    owner: list[str] = []
    seen: set[tuple[str, str]] = set()
    for e in examples:
        for c in e.contexts:
            if c.strip() and (e.group, c) not in seen:
                seen.add((e.group, c))
                passages.append(c)
                owner.append(e.group)
    if len(set(owner)) < 2:
        return list(examples)  # one document: nothing is "another document"
    have = {e.id for e in examples}
    retriever = bm25s.BM25()
    retriever.index([lexical_tokens(p) or ["_"] for p in passages], show_progress=False)
    added = []
    for i in _pick(examples, share, seed, "unanswerable"):
        e = examples[i]
        if f"{e.id}#unanswerable" in have or e.kind == COUNTERFACTUAL_KIND:
            continue  # augmented before (data prepare, then train), or itself a rewrite
        want = max(1, len(e.contexts))
        query = lexical_tokens(e.question) or ["_"]
        k = min(CANDIDATES, len(passages))
        ids, scores = retriever.retrieve([query], k=k, show_progress=False)
        chosen: list[str] = []
        for j, score in zip(ids[0].tolist(), scores[0].tolist(), strict=True):
            if score <= 0:
                break  # no word in common: not a look-alike, just any passage
            if owner[j] == e.group or answer_in_context_any(e.answers, passages[j]):
                continue
            if passages[j] not in chosen:
                chosen.append(passages[j])
            if len(chosen) == want:
                break
        if chosen:
            added.append(
                replace(
                    e,
                    id=f"{e.id}#unanswerable",
                    contexts=chosen,
                    answers=[],
                    answerable=False,
                    kind=UNANSWERABLE_KIND,
                )
            )
    return list(examples) + added


def answer_in_context_any(answers: Sequence[str], passage: str) -> bool:
    return any(answer_in_context(a, [passage]) for a in answers)


# The kind of an answer, from its shape and the question's wording.
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})(年)?$")
_DATE = re.compile(
    rf"^(\d{{1,2}} ({_MONTHS})( \d{{4}})?|({_MONTHS}) \d{{1,2}}(, \d{{4}})?|({_MONTHS}) \d{{4}}"
    r"|\d{4}年\d{1,2}月(\d{1,2}日)?|\d{1,2}月\d{1,2}日)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^[\d,.]+(\s?[%a-zA-Z\u4e00-\u9fff]{0,12})?$")
_CAPITALISED = re.compile(r"^[A-Z][\w'.-]*( (of|the|de|von|van|and|[A-Z][\w'.-]*))*$")
_PERSON_Q = re.compile(r"^\s*(who|whom|whose)\b|谁", re.IGNORECASE)
_PLACE_Q = re.compile(
    r"^\s*where\b|\b(which|what) (country|city|state|region|town|continent|island|river|"
    r"province|place|nation|county)\b|哪里|哪儿|何地|哪个(国家|城市|省|地区)|哪(国|座城市)",
    re.IGNORECASE,
)


def answer_kind(question: str, answer: str) -> str | None:
    """ "year", "date", "number", "person" or "place" for an answer span, or None when its
    kind is unclear (such examples are not rewritten)."""
    a = answer.strip()
    if _YEAR.match(a):
        return "year"
    if _DATE.match(a):
        return "date"
    if _NUMBER.match(a) and any(ch.isdigit() for ch in a):
        return "number"
    zh = language(question) == "zh"
    named = bool(_CAPITALISED.match(a)) if not zh else 1 < len(a) <= 8
    if named and _PERSON_Q.search(question):
        return "person"
    if named and _PLACE_Q.search(question):
        return "place"
    return None


def add_counterfactuals(examples: list[Example], share: float, seed: int = 0) -> list[Example]:
    """`examples` plus, for `share` of the answerable ones whose answer has a clear kind, a
    copy whose passages say another span of that kind from the corpus (same language) in
    place of the answer; that span becomes the gold answer. Skipped when no substitute
    leaves the old answer absent and the new one present."""
    if share <= 0:
        return list(examples)
    pool: dict[tuple[str, str], list[str]] = {}
    for e in examples:
        if e.answerable and e.answers:
            kind = answer_kind(e.question, e.answer)
            if kind:
                bucket = pool.setdefault((kind, language(e.answer)), [])
                if e.answer.strip() not in bucket:
                    bucket.append(e.answer.strip())
    rng = random.Random(f"{seed}:counterfactual:pick")
    added = []
    have = {e.id for e in examples}
    for i in _pick(examples, share, seed, "counterfactual"):
        e = examples[i]
        if e.kind == COUNTERFACTUAL_KIND or f"{e.id}#counterfactual" in have:
            continue  # already a rewrite, or rewritten before
        made = _rewrite(e, pool, rng)
        if made is not None:
            added.append(made)
    return list(examples) + added


def _substitute(passage: str, old: str, new: str) -> str:
    """`passage` with every whole occurrence of `old` replaced by `new` (English words on
    their boundaries, so "Paris" in "Parisian" stays; Chinese anywhere)."""
    if language(old) == "zh":
        return passage.replace(old, new)
    return re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", lambda _: new, passage)


def _rewrite(
    e: Example, pool: dict[tuple[str, str], list[str]], rng: random.Random
) -> Example | None:
    old = e.answer.strip()
    kind = answer_kind(e.question, old)
    if not kind:
        return None
    options = [a for a in pool.get((kind, language(old)), []) if normalize(a) != normalize(old)]
    rng.shuffle(options)
    for new in options[:10]:
        if any(new in c for c in e.contexts) or old in new or new in old:
            continue  # the passage already says it, or one span contains the other
        contexts = [_substitute(c, old, new) for c in e.contexts]
        if contexts == e.contexts:
            return None  # the answer is not verbatim in the passages
        stale = [a for a in e.answers if answer_in_context(a, contexts)]
        if stale or not answer_in_context(new, contexts):
            continue
        return replace(
            e,
            id=f"{e.id}#counterfactual",
            contexts=contexts,
            answers=[new],
            kind=COUNTERFACTUAL_KIND,
        )
    return None


def training_split(
    train: list[Example],
    evals: list[Example] | None,
    eval_fraction: float,
    seed: int,
    max_examples: int | None,
    augment: AugmentSection,
) -> tuple[list[Example], list[Example]]:
    """What `ragtune train` trains and holds out: `evals` when given, else `eval_fraction` of
    `train` held out by group and shared passage (as `data prepare` splits); the training
    side sampled to `max_examples`; both sides augmented from their own documents. Training
    and `ragtune calibrate` (refitting the refusal probe on a run's training side) share it."""
    from ragtune.data.split import sample, split_indices

    if evals is None:
        evals = []
        if eval_fraction > 0 and len({e.group for e in train}) > 1:
            train_idx, eval_idx, _ = split_indices(train, eval_fraction, seed)
            train, evals = [train[i] for i in train_idx], [train[i] for i in eval_idx]
    train = sample(train, max_examples, seed)
    return augment.apply(train, seed), augment.apply(evals, seed)
