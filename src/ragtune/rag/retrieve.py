"""The retrieval seam of the RAG pipeline: `Passage`, the `Retriever` protocol, and the two
retrievers built from others: reciprocal-rank fusion and cross-encoder reranking.

Every retriever, lexical (`rag.lexical`), dense (`rag.dense`), Qdrant (`rag.qdrant`) or
composed here, answers `retrieve(query, k) -> list[Passage]`, best first, so the pipeline,
the evaluation and the server never ask which one they hold.

    hybrid = Fused([bm25, dense], weights=[1.0, 1.0], rrf_k=60)
    best = Reranked(hybrid, OnnxCrossEncoder.default(), candidates=20).retrieve("question", 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ragtune.rag.chunk import Chunk
from ragtune.text import language


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    """The chunk retrieved: text, file, heading path and offsets."""
    score: float
    """The retriever's score (BM25, cosine, fused RRF or cross-encoder logit): higher is better."""

    @property
    def text(self) -> str:
        return self.chunk.text


class Retriever(Protocol):
    name: str

    def retrieve(self, query: str, k: int) -> list[Passage]: ...


class Reranker(Protocol):
    """Scores (query, passage) pairs: one float per passage, higher is more relevant. A
    reranker may carry `languages` (a set of `text.language` codes): queries in other
    languages keep the base retriever's order."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


def rrf(
    rankings: Sequence[Sequence[str]], weights: Sequence[float], k: int = 60
) -> dict[str, float]:
    """Reciprocal-rank fusion (Cormack et al. 2009): each id scores sum_r w_r / (k + rank_r),
    ranks counted from 1 in each ranking where it appears."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + w / (k + rank)
    return fused


class Fused:
    """Several retrievers fused by RRF. Each is asked for `candidates` passages (at least k),
    so a passage ranked low by one and high by another can still win."""

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        weights: Sequence[float] | None = None,
        rrf_k: int = 60,
        candidates: int = 50,
    ):
        self.retrievers = list(retrievers)
        self.weights = list(weights) if weights is not None else [1.0] * len(self.retrievers)
        if len(self.weights) != len(self.retrievers):
            raise ValueError(f"{len(self.weights)} weights for {len(self.retrievers)} retrievers")
        self.rrf_k, self.candidates = rrf_k, candidates
        self.name = "hybrid(" + "+".join(r.name for r in self.retrievers) + ")"

    def retrieve(self, query: str, k: int) -> list[Passage]:
        n = max(k, self.candidates)
        results = [r.retrieve(query, n) for r in self.retrievers]
        chunks = {p.chunk.id: p.chunk for ps in results for p in ps}
        fused = rrf([[p.chunk.id for p in ps] for ps in results], self.weights, self.rrf_k)
        best = sorted(fused, key=lambda c: -fused[c])[:k]
        return [Passage(chunks[c], fused[c]) for c in best]


class Reranked:
    """A retriever's top `candidates`, reordered by a cross-encoder; the top k are kept (those
    scoring at least `min_score`, when set: with none left, the pipeline refuses)."""

    def __init__(self, base: Retriever, reranker: Reranker, candidates: int = 20,
                 min_score: float | None = None):  # fmt: skip
        self.base, self.reranker, self.candidates = base, reranker, candidates
        self.min_score = min_score
        self.name = f"{base.name}+rerank"

    def retrieve(self, query: str, k: int) -> list[Passage]:
        languages = getattr(self.reranker, "languages", None)
        if languages is not None and language(query) not in languages:
            # An English cross-encoder reorders Chinese passages by noise (CMRC recall@1
            # fell from 70% to 45% in benchmarks/RESULTS.md): keep the base order.
            return self.base.retrieve(query, k)
        found = self.base.retrieve(query, max(k, self.candidates))
        if not found:
            return []
        scores = self.reranker.score(query, [p.chunk.indexed_text() for p in found])
        order = sorted(range(len(found)), key=lambda i: -scores[i])[:k]
        if self.min_score is not None:  # below it a passage is judged irrelevant: dropped
            order = [i for i in order if scores[i] >= self.min_score]
        return [replace(found[i], score=float(scores[i])) for i in order]
