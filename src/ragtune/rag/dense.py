"""Dense retrieval: chunk embeddings in a FAISS flat inner-product index (exact search;
vectors are L2-normalised, so inner product is cosine).

A flat index is exact and needs no training; past a few million chunks, move the same index
to Qdrant (`store=qdrant`, `rag.qdrant`) rather than tuning an approximate index here.

    dense = DenseRetriever(embedder, vectors, chunks)     # vectors: (N, D) float32
    dense.retrieve("who founded it?", 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.embed import Embedder
from ragtune.rag.chunk import Chunk
from ragtune.rag.retrieve import Passage


def normalized(vectors: Any) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)


def embed_chunks(embedder: Embedder, chunks: Sequence[Chunk], batch: int = 256) -> np.ndarray:
    """(N, D) normalised embeddings of the chunks' indexed text, in chunk order."""
    parts = [
        normalized(embedder.embed([c.indexed_text() for c in chunks[i : i + batch]]))
        for i in range(0, len(chunks), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def flat_index(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(vectors)
    return index


def save_index(index: Any, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load_index(path: Path) -> Any:
    import faiss

    return faiss.read_index(str(path))


class DenseRetriever:
    def __init__(self, embedder: Embedder, index: Any, chunks: Sequence[Chunk]):
        self.embedder, self.index, self.chunks = embedder, index, list(chunks)
        self.name = "dense"

    def retrieve(self, query: str, k: int) -> list[Passage]:
        if not self.chunks:
            return []
        q = normalized(self.embedder.embed([query]))
        scores, ids = self.index.search(q, min(k, len(self.chunks)))
        return [
            Passage(self.chunks[i], float(s))
            for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
            if i >= 0
        ]
