"""The index in Qdrant: one point per chunk with a dense vector, a BM25 sparse vector and
the chunk as payload; queries fuse both on the server (prefetch + RRF).

This is how a corpus that outgrows one machine keeps the same pipeline: `store=qdrant
qdrant.url=http://host:6333` sends the chunks to a Qdrant server or cluster. Without a URL,
qdrant-client's local mode runs in process on a folder inside the index (the same API and
the same exact search), which is what the tests use.

Sparse vectors carry BM25's term-frequency part, tf*(k1+1) / (tf + k1*(1-b+b*len/avglen));
Qdrant multiplies in the IDF itself (`Modifier.IDF`), so the collection's statistics stay
right as points come and go. Terms are `text.lexical_tokens` (jieba for Chinese), hashed to
32-bit indices.

    store = QdrantStore.connect(QdrantSection(), index_folder)
    store.sync(removed_files, chunks, vectors)
    QdrantRetriever(store, embedder, "hybrid").retrieve("question", 4)
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragtune.embed import Embedder
from ragtune.rag.chunk import Chunk
from ragtune.rag.dense import normalized
from ragtune.rag.retrieve import Passage
from ragtune.rag.settings import QdrantSection
from ragtune.text import lexical_tokens

K1, B = 1.2, 0.75
AVG_LEN = 120.0  # tokens per chunk assumed by the length norm; a constant keeps upserts independent
LOCAL_FOLDER = "qdrant"
_NAMESPACE = uuid.UUID("6f1c0d4e-2b1a-4c3e-9d7a-0e5b8a1f2c3d")


def term_index(token: str) -> int:
    return zlib.crc32(token.encode("utf-8")) & 0x7FFFFFFF


def sparse(text: str, query: bool = False) -> tuple[list[int], list[float]]:
    """(indices, values) of a text's BM25 sparse vector; a query's terms weigh 1 each."""
    counts = Counter(term_index(t) for t in lexical_tokens(text))
    if query:
        return list(counts), [1.0] * len(counts)
    n = sum(counts.values())
    norm = K1 * (1 - B + B * n / AVG_LEN)
    return list(counts), [tf * (K1 + 1) / (tf + norm) for tf in counts.values()]


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


class QdrantStore:
    def __init__(self, client: Any, collection: str, where: str):
        self.client, self.collection, self.where = client, collection, where

    @classmethod
    def connect(cls, section: QdrantSection, index_folder: str | Path) -> QdrantStore:
        from qdrant_client import QdrantClient

        collection = section.collection or "ragtune"
        if section.url:
            key = os.environ.get(section.api_key_env) or None
            return cls(QdrantClient(url=section.url, api_key=key), collection, section.url)
        path = Path(index_folder) / LOCAL_FOLDER
        path.mkdir(parents=True, exist_ok=True)
        return cls(QdrantClient(path=str(path)), collection, f"local:{path}")

    def close(self) -> None:
        self.client.close()

    def _ensure(self, dim: int) -> None:
        from qdrant_client import models as qm

        if self.client.collection_exists(self.collection):
            return
        self.client.create_collection(
            self.collection,
            vectors_config={"dense": qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
            sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        )

    def sync(
        self, files: Sequence[str], chunks: Sequence[Chunk], vectors: np.ndarray, batch: int = 256
    ) -> None:
        """Remove every point of `files` (deleted or changed), then upsert `chunks` (with
        their `vectors`, row for row): re-running after a kill converges to the same state."""
        from qdrant_client import models as qm

        self._ensure(int(vectors.shape[1]))
        for f in files:
            self.client.delete(
                self.collection,
                points_selector=qm.FilterSelector(
                    filter=qm.Filter(
                        must=[qm.FieldCondition(key="file", match=qm.MatchValue(value=f))]
                    )
                ),
            )
        for i in range(0, len(chunks), batch):
            points = []
            for c, v in zip(chunks[i : i + batch], vectors[i : i + batch], strict=True):
                idx, vals = sparse(c.indexed_text())
                points.append(
                    qm.PointStruct(
                        id=point_id(c.id),
                        vector={"dense": v.tolist(), "bm25": qm.SparseVector(indices=idx, values=vals)},
                        payload={"chunk_id": c.id, "file": c.file, "heading": list(c.heading),
                                 "start": c.start, "end": c.end, "text": c.text},
                    )
                )  # fmt: skip
            self.client.upsert(self.collection, points)

    def count(self) -> int:
        return int(self.client.count(self.collection).count)


def _chunk(payload: dict[str, Any]) -> Chunk:
    return Chunk(
        payload["chunk_id"],
        payload["file"],
        tuple(payload["heading"]),
        payload["start"],
        payload["end"],
        payload["text"],
    )


class QdrantRetriever:
    """dense, bm25 (sparse) or hybrid (server-side RRF of both) search of a QdrantStore."""

    def __init__(
        self, store: QdrantStore, embedder: Embedder | None, mode: str, candidates: int = 50
    ):
        self.store, self.embedder, self.mode, self.candidates = store, embedder, mode, candidates
        self.name = f"qdrant-{mode}"

    def retrieve(self, query: str, k: int) -> list[Passage]:
        from qdrant_client import models as qm

        idx, vals = sparse(query, query=True)
        sparse_q = qm.SparseVector(indices=idx, values=vals)
        dense_q = (
            normalized(self.embedder.embed([query]))[0].tolist()
            if self.embedder is not None and self.mode != "bm25"
            else None
        )
        kw: dict[str, Any] = {"limit": k, "with_payload": True}
        if self.mode == "bm25" or dense_q is None:
            if not idx:
                return []
            kw.update(query=sparse_q, using="bm25")
        elif self.mode == "dense":
            kw.update(query=dense_q, using="dense")
        else:
            n = max(k, self.candidates)
            prefetch = [qm.Prefetch(query=dense_q, using="dense", limit=n)]
            if idx:
                prefetch.append(qm.Prefetch(query=sparse_q, using="bm25", limit=n))
            kw.update(prefetch=prefetch, query=qm.FusionQuery(fusion=qm.Fusion.RRF))
        points = self.store.client.query_points(self.store.collection, **kw).points
        return [Passage(_chunk(p.payload or {}), float(p.score)) for p in points]
