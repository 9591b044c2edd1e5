"""BM25 over chunks with bm25s; each chunk (and each query) is tokenised by its own language
(`text.lexical_tokens`: jieba words for Chinese, stop-worded words otherwise), so one index
serves a mixed English and Chinese corpus.

bm25s indexes cannot grow: the indexer rebuilds this one from all chunks whenever a file
changes (seconds for 100k chunks) and says so; the embeddings, the expensive part, are kept.

    bm25 = Bm25Retriever.build(chunks); bm25.save(folder)
    Bm25Retriever.load(folder, chunks).retrieve("who founded it?", 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune.rag.chunk import Chunk
from ragtune.rag.retrieve import Passage
from ragtune.text import lexical_tokens

EMPTY = "_"  # bm25s needs one token per document; a chunk of stop words gets this


class Bm25Retriever:
    name = "bm25"

    def __init__(self, model: Any, chunks: Sequence[Chunk]):
        self.model, self.chunks = model, list(chunks)

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> Bm25Retriever:
        import bm25s

        model = bm25s.BM25()
        if chunks:
            tokens = [lexical_tokens(c.indexed_text()) or [EMPTY] for c in chunks]
            model.index(tokens, show_progress=False)
        return cls(model, chunks)

    def save(self, folder: Path) -> None:
        self.model.save(str(folder))

    @classmethod
    def load(cls, folder: Path, chunks: Sequence[Chunk]) -> Bm25Retriever:
        import bm25s

        return cls(bm25s.BM25.load(str(folder)), chunks)

    def retrieve(self, query: str, k: int) -> list[Passage]:
        vocab = getattr(self.model, "vocab_dict", None) or {}
        tokens = [t for t in lexical_tokens(query) if t in vocab]
        if not tokens or not self.chunks:
            return []  # no query word occurs in the corpus: BM25 has nothing to rank by
        k = min(k, len(self.chunks))
        ids, scores = self.model.retrieve([tokens], k=k, show_progress=False)
        return [
            Passage(self.chunks[i], float(s))
            for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
            if s > 0
        ]
