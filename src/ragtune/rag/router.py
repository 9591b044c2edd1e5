"""Routing in front of the pipeline: does a question need retrieval, or should it go straight
to the model (arithmetic, chit-chat, a rewrite)?

Routes are labels with example queries, from the config (`router.routes`); the label "rag"
means retrieval, any other label answers without passages.
- `EmbeddingRouter`: the label of the nearest example query in embedding space (cosine);
  below `min_similarity` the question goes to the default route.
- `LlmRouter`: asks a model (any `Generator`, an OpenAI-compatible endpoint included) to name
  the label, with the example queries in the prompt; a reply naming no label means default.

    router = EmbeddingRouter(embedder, {"rag": ["what does the policy say about leave?"],
                                        "direct": ["what is 17 * 3?", "hello!"]})
    router.route("what is 12 + 30?")     # "direct"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from ragtune.config import ConfigError
from ragtune.embed import Embedder
from ragtune.generation.base import Generator
from ragtune.rag.dense import normalized

RAG = "rag"


@dataclass
class RouterSection:
    method: Literal["none", "embedding", "llm"] = "none"
    """none (every question is retrieved for), embedding (nearest example query) or llm (a
    model names the route)."""
    routes: dict[str, list[str]] = field(default_factory=dict)
    """Label -> example queries; "rag" is retrieval, any other label goes to the model
    directly (in YAML: routes: {rag: [...], direct: [...]})."""
    default: str = RAG
    """Route when the router is unsure (similarity below min_similarity, or no label named)."""
    min_similarity: float = 0.3
    """embedding: the nearest example must be at least this similar (cosine)."""
    model: str | None = None
    """llm: the classifier's model spec (openai:MODEL for an endpoint); default: the answering model."""

    def __post_init__(self) -> None:
        if self.method != "none" and not self.routes:
            raise ConfigError("router.routes: give at least one label with example queries")
        for label, examples in self.routes.items():
            if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
                raise ConfigError(f"router.routes.{label}: expected a list of example queries")


class Router(Protocol):
    def route(self, question: str) -> str: ...


class EmbeddingRouter:
    def __init__(self, embedder: Embedder, routes: dict[str, list[str]], default: str = RAG,
                 min_similarity: float = 0.3):  # fmt: skip
        self.labels = [label for label, ex in routes.items() for _ in ex]
        texts = [e for ex in routes.values() for e in ex]
        if not texts:
            raise ConfigError("router.routes: no example queries")
        self.embedder, self.default, self.min_similarity = embedder, default, min_similarity
        self.vectors = normalized(embedder.embed(texts))  # (examples, D)

    def route(self, question: str) -> str:
        sims = self.vectors @ normalized(self.embedder.embed([question]))[0]
        best = int(np.argmax(sims))
        return self.labels[best] if sims[best] >= self.min_similarity else self.default


class LlmRouter:
    def __init__(self, generator: Generator, routes: dict[str, list[str]], default: str = RAG):
        self.generator, self.routes, self.default = generator, routes, default
        lines = [
            f"- {label}: questions like " + "; ".join(f'"{e}"' for e in ex[:5])
            for label, ex in routes.items()
        ]
        self.system = (
            "Classify the user's question into exactly one route. Routes:\n"
            + "\n".join(lines)
            + f"\n({RAG} means the answer must be looked up in the user's documents.) "
            "Reply with the route name only."
        )

    def route(self, question: str) -> str:
        msgs = [{"role": "system", "content": self.system}, {"role": "user", "content": question}]
        reply = self.generator.generate([msgs])[0].text.strip().lower()
        for label in sorted(self.routes, key=len, reverse=True):  # "rag" inside "rag-docs"
            if label.lower() in reply:
                return label
        return self.default


def make_router(
    section: RouterSection, index: Any, generator: Generator, gen: Any
) -> Router | None:
    """The router a RouterSection describes: embedding routers use the index's embedder (or
    all-MiniLM-L6-v2 for a BM25-only index); an llm router uses router.model, or the
    answering model when unset."""
    if section.method == "none":
        return None
    if section.method == "embedding":
        from ragtune.embed import load_embedder

        embedder = index.embedder() or load_embedder("minilm")
        return EmbeddingRouter(embedder, section.routes, section.default, section.min_similarity)
    classifier = generator
    if section.model:
        from dataclasses import replace

        from ragtune.generation.load import load_generator

        classifier = load_generator(replace(gen, model=section.model, adapter=None))
    return LlmRouter(classifier, section.routes, section.default)
