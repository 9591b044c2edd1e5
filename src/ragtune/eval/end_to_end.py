"""The end-to-end score (`ragtune eval --index INDEX`): each question answered from the
passages a retriever found instead of its gold ones, and what that costs.

Besides the usual metrics (computed against the gold answers, with answer-in-context checked
against the retrieved passages), each row gets:
- retrieved_relevant: a retrieved passage is the question's own (`eval.retrieval.relevant`);
- citations: the passages the answer cites (`rag.cite`, 1-based);
- cited_correct: a cited passage holds a gold answer (answered, answerable questions only).
and the metrics:
- retrieval_miss_rate: answerable questions whose own passage was not retrieved, %;
- citation_accuracy: answered answerable questions whose citations include a passage holding
  a gold answer, % (no citation counts as wrong).
A high miss rate says fix the retriever; a low miss rate with low F1 says fix the generator.

    examples2, passages = retrieve_for(examples, index, RetrievalSection())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ragtune.eval.retrieval import relevant
from ragtune.example import Example
from ragtune.rag.cite import cite
from ragtune.rag.index import Index
from ragtune.rag.retrieve import Passage
from ragtune.rag.settings import RetrievalSection
from ragtune.text import answer_in_context


def retrieve_for(
    examples: Sequence[Example], index: Index, section: RetrievalSection, threads: int = 1
) -> tuple[list[Example], list[list[Passage]]]:
    """Each example with its contexts replaced by the top-k retrieved passages, and those
    passages."""
    retriever = index.retriever(section, threads)
    found = [retriever.retrieve(e.question, section.k) for e in examples]
    return [replace(e, contexts=[p.text for p in ps]) for e, ps in zip(examples, found)], found


def score_retrieval(
    rows: list[dict[str, Any]],
    gold: Sequence[Example],
    found: Sequence[list[Passage]],
    shown: Sequence[Sequence[str]],
) -> dict[str, Any]:
    """Annotate `rows` (in place) and return the end-to-end metrics. `shown` are the passage
    texts the model saw (fitted to max_length): citations point into those."""
    misses = answerable = answered = cited_ok = 0
    for row, ex, retrieved, texts in zip(rows, gold, found, shown, strict=True):
        row["retrieved_relevant"] = any(relevant(p.chunk, ex) for p in retrieved)
        ps = [replace(p, chunk=replace(p.chunk, text=t)) for p, t in zip(retrieved, texts)]
        row["citations"] = [] if row["refused"] else cite(row["prediction"], ps)
        row["retrieved"] = [p.chunk.id for p in retrieved]
        if not ex.answerable:
            continue
        answerable += 1
        misses += not row["retrieved_relevant"]
        if not row["refused"]:
            answered += 1
            ok = any(
                answer_in_context(a, [ps[n - 1].text]) for n in row["citations"] for a in ex.answers
            )
            row["cited_correct"] = ok
            cited_ok += ok
    return {
        "retrieval_miss_rate": 100 * misses / answerable if answerable else None,
        "citation_accuracy": 100 * cited_ok / answered if answered else None,
    }
