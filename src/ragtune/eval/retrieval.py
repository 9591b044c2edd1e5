"""Retrieval quality on a QA file: `ragtune eval-retrieval INDEX --data QA_FILE`.

Each question's own passage is the relevant one. An index holds chunks of documents, not the
QA file's passages, so a chunk counts as relevant to a question (`relevant`) when it is a
piece of that question's gold context (at least `OVERLAP` of the smaller one's distinct
tokens are shared) and, for an answerable question, contains a gold answer. Unanswerable
questions are scored on their passage alone.

Per retrieval setting (bm25, dense, hybrid, hybrid+rerank by default), side by side:
recall@k (a relevant chunk in the top k) for each k in `ks`, MRR (1 / rank of the first
relevant chunk, 0 past the deepest k) and nDCG@`ndcg_k` (binary gains, ideal = every relevant
chunk first), plus query latency p50 / p95 in milliseconds. Writes `retrieval.json` and
`retrieval.md` into `out` when given.

    ragtune eval-retrieval my-index --data squad.json modes=bm25,dense,hybrid
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.config import ConfigError, require
from ragtune.data.importers import load_examples
from ragtune.data.split import sample
from ragtune.eval.metrics import percentile
from ragtune.example import Example
from ragtune.rag.chunk import Chunk
from ragtune.rag.index import Index
from ragtune.rag.settings import RetrievalSection
from ragtune.text import answer_in_context, language, metric_tokens

OVERLAP = 0.6


@lru_cache(maxsize=200_000)  # every chunk is compared with every question's context
def _tokens(text: str, lang: str) -> frozenset[str]:
    return frozenset(metric_tokens(text, lang))


def relevant(chunk: Chunk, ex: Example) -> bool:
    """Whether `chunk` is (a piece of) one of `ex`'s gold contexts and holds its answer."""
    lang = language(chunk.text)
    got = _tokens(chunk.text, lang)
    if not got:
        return False
    for ctx in ex.contexts:
        want = _tokens(ctx, lang)
        if want and len(got & want) >= OVERLAP * min(len(got), len(want)):
            return not ex.answerable or answer_in_context(ex.answer, [chunk.text])
    return False


def rank_metrics(
    hits: Sequence[bool], n_relevant: int, ks: Sequence[int], ndcg_k: int
) -> dict[str, float]:
    """Per question: recall@k (0/1 each), reciprocal rank and nDCG@ndcg_k of a ranked list."""
    out = {f"recall@{k}": float(any(hits[:k])) for k in ks}
    first = next((i for i, h in enumerate(hits) if h), None)
    out["mrr"] = 0.0 if first is None else 1.0 / (first + 1)
    dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits[:ndcg_k]) if h)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(n_relevant, ndcg_k)))
    out[f"ndcg@{ndcg_k}"] = dcg / ideal if ideal else 0.0
    return out


@dataclass
class EvalRetrievalConfig:
    index: str = ""
    """The index folder (`ragtune index` over the documents the questions are about)."""
    data: str = ""
    """QA file in any supported format; each question's context is its relevant passage."""
    format: str = "auto"
    """Format of data; auto detects it."""
    out: str | None = None
    """Folder for retrieval.json and retrieval.md (unset: print only)."""
    modes: list[str] = field(default_factory=lambda: ["bm25", "dense", "hybrid", "hybrid+rerank"])
    """Settings compared: bm25, dense, hybrid, each optionally +rerank."""
    ks: list[int] = field(default_factory=lambda: [1, 5, 20])
    """Cut-offs for recall@k."""
    ndcg_k: int = 10
    """Cut-off for nDCG."""
    max_examples: int | None = None
    """Score at most N questions (whole articles, drawn with seed)."""
    seed: int = 0
    """Seed of the max_examples sample."""
    threads: int = 2
    """CPU threads for the embedder and the reranker."""
    retrieval: RetrievalSection = field(default_factory=lambda: RetrievalSection(rerank="default"))
    """Fusion and reranking settings (rrf_k, weights, candidates, rerank for +rerank modes)."""

    def __post_init__(self) -> None:
        require(self, "ndcg_k", min=1)
        for m in self.modes:
            if m.removesuffix("+rerank") not in ("bm25", "dense", "hybrid"):
                raise ConfigError(f"modes: {m!r} is not bm25, dense or hybrid (+rerank)")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"ks: need cut-offs >= 1, got {self.ks}")


Config = EvalRetrievalConfig


def evaluate_retriever(retriever: Any, examples: Sequence[Example], chunks: Sequence[Chunk],
                       ks: Sequence[int], ndcg_k: int) -> dict[str, Any]:  # fmt: skip
    depth = max(*ks, ndcg_k)
    totals: dict[str, float] = {}
    latencies: list[float] = []
    scored = 0
    for ex in examples:
        n_rel = sum(relevant(c, ex) for c in chunks)
        if not n_rel:
            continue  # its passage is not in the index (or its answer was cut): not scorable
        t0 = time.perf_counter()
        found = retriever.retrieve(ex.question, depth)
        latencies.append((time.perf_counter() - t0) * 1000)
        hits = [relevant(p.chunk, ex) for p in found]
        for key, v in rank_metrics(hits, n_rel, ks, ndcg_k).items():
            totals[key] = totals.get(key, 0.0) + v
        scored += 1
    # Recall and nDCG in %, MRR as the 0-1 mean it is usually quoted as.
    out: dict[str, Any] = (
        {k: (1 if k == "mrr" else 100) * v / scored for k, v in totals.items()} if scored else {}
    )
    out["questions"] = scored
    out["latency_ms_p50"] = percentile(latencies, 0.5) if latencies else None
    out["latency_ms_p95"] = percentile(latencies, 0.95) if latencies else None
    return out


def run(cfg: EvalRetrievalConfig) -> dict[str, Any]:
    if not cfg.index or not cfg.data:
        raise ConfigError("index and data are required (ragtune eval-retrieval INDEX --data FILE)")
    examples = sample(load_examples(cfg.data, cfg.format), cfg.max_examples, cfg.seed)
    index = Index.open(cfg.index)
    results: dict[str, Any] = {"index": cfg.index, "data": cfg.data, "modes": {}}
    try:
        for mode in cfg.modes:
            base = mode.removesuffix("+rerank")
            section = replace(
                cfg.retrieval,
                mode=base,  # type: ignore[arg-type]
                rerank=cfg.retrieval.rerank if mode.endswith("+rerank") else "none",
            )
            if section.rerank == "none" and mode.endswith("+rerank"):
                raise ConfigError(f"modes: {mode} needs retrieval.rerank (default or a folder)")
            retriever = index.retriever(section, cfg.threads)
            results["modes"][mode] = evaluate_retriever(
                retriever, examples, index.chunks, cfg.ks, cfg.ndcg_k
            )
    finally:
        index.close()
    results["scorable"] = max((m["questions"] for m in results["modes"].values()), default=0)
    results["examples"] = len(examples)
    results["markdown"] = table(results, cfg.ks, cfg.ndcg_k)
    if cfg.out:
        out = Path(cfg.out)
        atomic.write_json(
            out / "retrieval.json", {k: v for k, v in results.items() if k != "markdown"}
        )
        atomic.write_text(out / "retrieval.md", results["markdown"] + "\n")
    return results


def table(results: dict[str, Any], ks: Sequence[int], ndcg_k: int) -> str:
    cols = [
        *(f"recall@{k}" for k in ks),
        "mrr",
        f"ndcg@{ndcg_k}",
        "latency_ms_p50",
        "latency_ms_p95",
    ]
    lines = ["| setting | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for mode, m in results["modes"].items():
        cells = []
        for c in cols:
            v = m.get(c)
            cells.append("-" if v is None else f"{v:.3f}" if c == "mrr" else f"{v:.1f}")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def show(results: dict[str, Any]) -> None:
    print(
        f"{results['scorable']} of {results['examples']} questions have their passage in the index"
    )
    print(results["markdown"])
