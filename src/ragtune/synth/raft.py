"""`ragtune data raft DATA --out FILE`: RAFT examples (Zhang et al. 2024) with retrieved
distractors.

Each example keeps its oracle passage and gets `distractors` more, the passages BM25 ranks
highest for its question among the corpus (every distinct passage of the data, or the chunks
of `index=INDEX`). Skipped as distractors: the oracle itself, near-duplicates of it (half
of its distinct tokens or more), and any passage holding a gold answer, which would make a
"distractor" answerable. A `no_oracle_share` of the examples lose the oracle: they get
distractors only and the refusal sentence as target (kind "raft_no_oracle"). The passage order
is shuffled, so the model cannot learn that the answer sits in passage [1]. Retrieved rather
than random distractors are what RAFT's reference code lacks (gorilla #597, #996).

    ragtune data raft data/train.jsonl --out data/raft.jsonl distractors=3 no_oracle_share=0.2
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from ragtune.config import ConfigError, require
from ragtune.data.importers import load_examples
from ragtune.example import Example, write_jsonl
from ragtune.rag.chunk import Chunk
from ragtune.rag.lexical import Bm25Retriever
from ragtune.text import answer_in_context, language, metric_tokens

NO_ORACLE_KIND = "raft_no_oracle"
NEAR_DUPLICATE = 0.5


@dataclass
class RaftConfig:
    data: str = ""
    """QA data in any supported format; each example's contexts are its oracle passages."""
    format: str = "auto"
    """Format of data; auto detects it."""
    out: str = "data/raft.jsonl"
    """Where the RAFT examples go (canonical JSONL)."""
    index: str | None = None
    """Draw distractors from this index's chunks (`ragtune index`) instead of the data's own passages."""
    distractors: int = 3
    """Distractor passages per example."""
    no_oracle_share: float = 0.2
    """Share of examples without their oracle: distractors only, refusal as the target."""
    candidates: int = 30
    """BM25 candidates per question searched for distractors."""
    seed: int = 0
    """Seed for which examples lose the oracle and for the passage order."""
    cite: bool = False
    """Targets end with the oracle's passage number ("Paris [2]"); train with prompt.cite=true."""

    def __post_init__(self) -> None:
        require(self, "distractors", min=1)
        require(self, "no_oracle_share", min=0, max=1)
        require(self, "candidates", min=1)


Config = RaftConfig


def _tokens(text: str) -> set[str]:
    return set(metric_tokens(text, language(text)))


def near_duplicate(a: str, b: str) -> bool:
    ta, tb = _tokens(a), _tokens(b)
    return bool(ta and tb) and len(ta & tb) >= NEAR_DUPLICATE * min(len(ta), len(tb))


def corpus_of(examples: list[Example]) -> list[Chunk]:
    seen: dict[str, Chunk] = {}
    for e in examples:
        for c in e.contexts:
            if c.strip() and c not in seen:
                seen[c] = Chunk(f"p{len(seen)}", e.group, (), 0, len(c), c)
    return list(seen.values())


def distractors_for(ex: Example, bm25: Bm25Retriever, k: int, candidates: int) -> list[str]:
    """Up to k hard distractors for `ex`: BM25's best passages that are not its oracle, not
    near-duplicates of it and hold none of its answers."""
    chosen: list[str] = []
    for p in bm25.retrieve(ex.question, candidates):
        t = p.text
        if t in ex.contexts or any(near_duplicate(t, o) for o in ex.contexts):
            continue
        holds = any(answer_in_context(a, [t]) for a in ex.answers)
        if holds or any(near_duplicate(t, c) for c in chosen):
            continue
        chosen.append(t)
        if len(chosen) == k:
            break
    return chosen


def make_raft(examples: list[Example], corpus: list[Chunk], k: int, no_oracle_share: float,
              seed: int, candidates: int = 30, cite: bool = False) -> tuple[list[Example], Counter[str]]:  # fmt: skip
    """(RAFT examples, counts: with oracle, without, skipped for too few distractors)."""
    rng = random.Random(seed)
    bm25 = Bm25Retriever.build(corpus)
    answerable = [i for i, e in enumerate(examples) if e.answerable]
    drop_oracle = set(rng.sample(answerable, round(no_oracle_share * len(answerable))))
    out: list[Example] = []
    counts: Counter[str] = Counter()
    for i, ex in enumerate(examples):
        need = k + (1 if i in drop_oracle else 0)  # the same passage count either way
        ds = distractors_for(ex, bm25, need, candidates)
        if len(ds) < need:
            counts["too few distractors"] += 1
            continue
        if i in drop_oracle:
            passages = ds
            new = replace(ex, id=f"{ex.id}#raft", contexts=passages, answers=[], answerable=False,
                          kind=NO_ORACLE_KIND)  # fmt: skip
            counts["without oracle"] += 1
        else:
            passages = [*ex.contexts, *ds]
            rng.shuffle(passages)
            answers = ex.answers
            if cite:  # the number of the oracle passage that holds the answer, after the shuffle
                holds = [c for c in ex.contexts if answer_in_context(ex.answer, [c])]
                n = passages.index((holds or ex.contexts)[0]) + 1
                answers = [f"{a} [{n}]" for a in ex.answers]
            new = replace(
                ex, id=f"{ex.id}#raft", contexts=passages, answers=answers, kind=ex.kind or "raft"
            )
            counts["with oracle"] += 1
        out.append(new)
    return out, counts


def run(cfg: RaftConfig) -> dict[str, Any]:
    if not cfg.data:
        raise ConfigError("data: a QA file is required (ragtune data raft DATA --out FILE)")
    examples = load_examples(cfg.data, cfg.format)
    if cfg.index:
        from ragtune.rag.index import Index

        corpus = Index.open(cfg.index).chunks
    else:
        corpus = corpus_of(examples)
    if len(corpus) <= cfg.distractors:
        raise ConfigError(
            f"distractors: {cfg.distractors} per example needs a corpus of more passages than "
            f"{len(corpus)}; lower it or give index=INDEX"
        )
    made, counts = make_raft(examples, corpus, cfg.distractors, cfg.no_oracle_share, cfg.seed,
                             cfg.candidates, cfg.cite)  # fmt: skip
    write_jsonl(cfg.out, made)
    return {"out": cfg.out, "examples": len(made), "corpus": len(corpus), **dict(counts)}


def show(r: dict[str, Any]) -> None:
    print(f"raft: {r['examples']} examples -> {r['out']} (distractors from {r['corpus']} passages)")
    for k in ("with oracle", "without oracle", "too few distractors"):
        if r.get(k):
            print(f"  {k}: {r[k]}")
