"""The index: a folder of ordinary files that `ragtune index` builds and updates in place.

    INDEX/manifest.json        settings, per-file SHA-256 and chunk count, the live data folder
    INDEX/data-N/chunks.jsonl  one chunk per line (file, heading path, offsets, text)
    INDEX/data-N/vectors.npy   (chunks, D) float32 normalised embeddings, row = chunk line
    INDEX/data-N/dense.faiss   FAISS flat inner-product index over those vectors
    INDEX/data-N/bm25/         bm25s index over the same chunks
    INDEX/qdrant/              Qdrant's local-mode storage (store=qdrant without a URL)

An update writes a new data-N+1 beside the old one and switches the manifest to it last
(one atomic rename), so a run killed at any point leaves the previous index whole; stale
folders are removed by the next run. Files whose SHA-256 did not change keep their chunks
and vectors; changed and new files are re-chunked and re-embedded; files no longer among
the inputs are dropped. BM25 and the flat FAISS index are rebuilt from all chunks (cheap;
bm25s cannot add documents). A change of chunking or embedder rebuilds everything.

    report = build(IndexConfig(docs=["docs/"], out="my-index"))
    index = Index.open("my-index"); index.retriever(RetrievalSection()).retrieve("q", 4)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragtune import atomic
from ragtune.embed import Embedder, load_embedder
from ragtune.errors import RagtuneError
from ragtune.rag import dense, documents
from ragtune.rag.chunk import Chunk, chunk_document
from ragtune.rag.lexical import Bm25Retriever
from ragtune.rag.retrieve import Fused, Reranked, Retriever
from ragtune.rag.settings import QdrantSection, RetrievalSection
from ragtune.runs import file_sha256
from ragtune.text import language

MANIFEST = "manifest.json"
FORMAT = 1
ZH_SHARE_FOR_MULTILINGUAL = 0.1  # embedder=auto: this share of Chinese chunks picks USE


@dataclass
class IndexConfig:
    docs: list[str] = field(default_factory=list)
    """Files and folders to index (Markdown, text, HTML, PDF; folders recursively)."""
    out: str = "index"
    """The index folder; an existing index there is updated in place."""
    chunk_size: int = 160
    """Tokens per chunk (words, punctuation marks, CJK characters): about a SQuAD paragraph,
    and within all-MiniLM-L6-v2's 256 word pieces."""
    chunk_overlap: int = 32
    """Tokens shared by consecutive chunks of a section, so a sentence cut at a boundary is
    whole in one of them."""
    embedder: str = "auto"
    """minilm (English), use-multilingual (Chinese and 15 more languages), a
    sentence-transformers folder, none (BM25 only), or auto: use-multilingual when a tenth
    of the chunks are Chinese, else minilm."""
    store: str = "local"
    """local (files in the index folder: FAISS + bm25s) or qdrant (also kept in Qdrant,
    which then answers queries: qdrant.url, or local mode inside the index folder)."""
    qdrant: QdrantSection = field(default_factory=QdrantSection)
    """Where the Qdrant copy lives (store=qdrant)."""
    threads: int = 2
    """CPU threads for embedding."""

    def __post_init__(self) -> None:
        if self.store not in ("local", "qdrant"):
            raise RagtuneError(f"store: must be local or qdrant, got {self.store!r}")
        if self.chunk_size < 8:
            raise RagtuneError(f"chunk_size: must be at least 8, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise RagtuneError(
                f"chunk_overlap: must be in [0, chunk_size/2), got {self.chunk_overlap}"
            )


@dataclass
class BuildReport:
    folder: str
    files: int = 0
    unchanged: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)
    """Files chunked and embedded in this run (new or changed)."""
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """One line per file or path that could not be indexed, naming it."""
    chunks: int = 0
    embedder: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0


def _file_key(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RagtuneError(f"{path}: not a ragtune index manifest ({e})") from e
    if manifest.get("format") != FORMAT:
        raise RagtuneError(f"{path}: index format {manifest.get('format')}, expected {FORMAT}")
    return manifest


def _load_chunks(path: Path) -> list[Chunk]:
    chunks = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line:
            continue
        try:
            r = json.loads(line)
            chunks.append(Chunk(**{**r, "heading": tuple(r["heading"])}))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise RagtuneError(
                f"{path}:{n}: not an index chunk ({e}); rebuild with `ragtune index`"
            ) from None
    return chunks


def _resolve_embedder(spec: str, chunks: list[Chunk]) -> str:
    if spec != "auto":
        return spec
    zh = sum(language(c.text) == "zh" for c in chunks)
    return (
        "use-multilingual" if chunks and zh >= ZH_SHARE_FOR_MULTILINGUAL * len(chunks) else "minilm"
    )


SETTINGS = ("chunk_size", "chunk_overlap", "embedder", "store", "qdrant")  # what the manifest keeps


def build(settings: IndexConfig) -> BuildReport:
    """Index `settings.docs` into `settings.out`, reusing what an earlier run there made."""
    t0 = time.perf_counter()
    docs, threads = settings.docs, settings.threads
    folder = Path(settings.out)
    report = BuildReport(str(folder))
    files, report.problems = documents.collect(docs)
    old = _read_manifest(folder)
    if settings.store == "qdrant" and settings.qdrant.collection is None:
        # One collection per index (two indexes on one server must not share one), named at
        # the first build and kept in the manifest.
        stored = (old or {}).get("settings", {}).get("qdrant") or {}
        settings.qdrant.collection = stored.get("collection") or (
            "ragtune_" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
        )
    old_chunks: dict[str, list[Chunk]] = {}
    old_vectors: np.ndarray | None = None
    same = old is not None and all(
        old["settings"][k] == getattr(settings, k) for k in ("chunk_size", "chunk_overlap")
    ) and (settings.embedder in ("auto", old["embedder"]))  # fmt: skip
    if old is not None and not same:
        report.notes.append("chunking or embedder changed: everything is re-indexed")
    if old is not None and same:
        data = folder / old["data"]
        for c in _load_chunks(data / "chunks.jsonl"):
            old_chunks.setdefault(c.file, []).append(c)
        if (data / "vectors.npy").is_file():
            old_vectors = np.load(data / "vectors.npy")
    old_rows: dict[str, int] = {}
    if old_vectors is not None:
        row = 0
        for f, cs in old_chunks.items():  # insertion order is the file order of the old index
            old_rows[f] = row
            row += len(cs)

    kept: list[tuple[str, list[Chunk], np.ndarray | None]] = []  # (file, chunks, vectors or None)
    hashes: dict[str, str] = {}
    for path in files:
        name = str(path)
        digest = file_sha256(path)
        prev = (old or {}).get("files", {}).get(name) if same else None
        if prev and prev["sha256"] == digest and name in old_chunks:
            cs = old_chunks[name]
            vec = None
            if old_vectors is not None and name in old_rows:
                vec = old_vectors[old_rows[name] : old_rows[name] + len(cs)]
            kept.append((name, cs, vec))
            report.unchanged.append(name)
            hashes[name] = digest
            continue
        try:
            doc = documents.read(path)
        except documents.DocumentError as e:
            report.problems.append(str(e))
            continue
        except OSError as e:
            report.problems.append(f"{path}: {e.strerror or e}; skipped")
            continue
        cs = chunk_document(doc, _file_key(name), settings.chunk_size, settings.chunk_overlap)
        if not cs:
            report.problems.append(f"{path}: no text to index; skipped")
            continue
        kept.append((name, cs, None))
        report.embedded.append(name)
        hashes[name] = digest
    indexed = set(hashes)
    report.removed = sorted(set((old or {}).get("files", {})) - indexed) if old else []
    if not kept:
        raise RagtuneError(
            "nothing to index: "
            + ("; ".join(report.problems) if report.problems else f"no documents in {docs}")
        )

    if old is not None and same and not report.embedded and not report.removed:
        stored = old["settings"]
        if stored["store"] == settings.store and stored["qdrant"] == asdict(settings.qdrant):
            report.files, report.chunks, report.embedder = len(kept), old["chunks"], old["embedder"]
            report.notes.append("up to date: nothing changed since the last run")
            _remove_stale(folder, old["data"])
            report.seconds = round(time.perf_counter() - t0, 2)
            report.bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            return report
    all_chunks = [c for _, cs, _ in kept for c in cs]
    embedder_spec = old["embedder"] if old is not None and same else _resolve_embedder(
        settings.embedder, all_chunks
    )  # fmt: skip
    report.embedder = embedder_spec
    vectors = None
    if embedder_spec != "none":
        embedder = load_embedder(embedder_spec, threads)
        parts = []
        todo = [(i, cs) for i, (_, cs, vec) in enumerate(kept) if vec is None]
        new = dense.embed_chunks(embedder, [c for _, cs in todo for c in cs]) if todo else None
        at = 0
        for _, cs, vec in kept:
            if vec is None:
                assert new is not None
                vec, at = new[at : at + len(cs)], at + len(cs)
            parts.append(vec)
        vectors = np.concatenate(parts).astype(np.float32)
    report.chunks = len(all_chunks)
    if report.unchanged and (report.embedded or report.removed):
        report.notes.append(f"BM25 rebuilt over all {len(all_chunks)} chunks (bm25s cannot add)")

    gen = int(old["data"].split("-")[1]) + 1 if old else 1
    data = folder / f"data-{gen}"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    atomic.write_jsonl(
        data / "chunks.jsonl", [{**asdict(c), "heading": list(c.heading)} for c in all_chunks]
    )
    Bm25Retriever.build(all_chunks).save(data / "bm25")
    if vectors is not None:
        np.save(data / "vectors.npy", vectors)
        dense.save_index(dense.flat_index(vectors), data / "dense.faiss")
    if settings.store == "qdrant":
        if vectors is None:
            raise RagtuneError("store=qdrant needs dense vectors: set embedder (not none)")
        _sync_qdrant(folder, settings.qdrant, old, same, kept, vectors, report)
    manifest = {
        "format": FORMAT,
        "data": data.name,
        "settings": {k: v for k, v in asdict(settings).items() if k in SETTINGS},
        "embedder": embedder_spec,
        "dim": int(vectors.shape[1]) if vectors is not None else None,
        "chunks": len(all_chunks),
        "files": {name: {"sha256": hashes[name], "chunks": len(cs)} for name, cs, _ in kept},
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic.write_json(folder / MANIFEST, manifest)  # the switch: the new data is live from here
    _remove_stale(folder, data.name)
    report.files = len(kept)
    report.seconds = round(time.perf_counter() - t0, 2)
    report.bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return report


def _remove_stale(folder: Path, live: str) -> None:
    """Data folders of earlier runs (or of a killed one). A process that opened the index
    before has it loaded in memory, so removing its files does not break it."""
    for stale in folder.glob("data-*"):
        if stale.name != live and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def _sync_qdrant(folder: Path, section: QdrantSection, old: dict[str, Any] | None, same: bool,
                 kept: list[tuple[str, list[Chunk], Any]], vectors: np.ndarray,
                 report: BuildReport) -> None:  # fmt: skip
    from ragtune.rag.qdrant import QdrantStore

    store = QdrantStore.connect(section, folder)
    try:
        was = (old or {}).get("settings", {}).get("qdrant") if old else None
        fresh = not (old and same and old["settings"].get("store") == "qdrant" and was == asdict(section)
                     and old.get("dim") == int(vectors.shape[1]))  # fmt: skip
        if fresh and store.client.collection_exists(store.collection):
            store.client.delete_collection(store.collection)
        redo = {name for name, _, _ in kept} if fresh else set(report.embedded)
        rows: list[int] = []
        at = 0
        upsert: list[Chunk] = []
        for name, cs, _ in kept:
            if name in redo:
                upsert.extend(cs)
                rows.extend(range(at, at + len(cs)))
            at += len(cs)
        store.sync(sorted(redo | set(report.removed)), upsert, vectors[rows])
        report.notes.append(
            f"qdrant {store.where} collection {store.collection}: {store.count()} points"
        )
    finally:
        store.close()


class Index:
    """An index folder opened for search."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = _read_manifest(self.folder)
        if manifest is None:
            raise RagtuneError(
                f"{self.folder}: no index here (build one with `ragtune index DOCS --out {folder}`)"
            )
        self.manifest = manifest
        self.data = self.folder / manifest["data"]
        self.chunks = _load_chunks(self.data / "chunks.jsonl")
        self._embedder: Embedder | None = None
        self._qdrant: Any = None

    @classmethod
    def open(cls, folder: str | Path) -> Index:
        return cls(folder)

    def embedder(self, threads: int = 1) -> Embedder | None:
        if self.manifest["embedder"] == "none":
            return None
        if self._embedder is None:
            self._embedder = load_embedder(self.manifest["embedder"], threads)
        return self._embedder

    def bm25(self) -> Bm25Retriever:
        return Bm25Retriever.load(self.data / "bm25", self.chunks)

    def dense(self, threads: int = 1) -> dense.DenseRetriever:
        embedder = self.embedder(threads)
        if embedder is None:
            raise RagtuneError(f"{self.folder}: built with embedder=none; use mode=bm25")
        return dense.DenseRetriever(
            embedder, dense.load_index(self.data / "dense.faiss"), self.chunks
        )

    def retriever(self, section: RetrievalSection, threads: int = 1) -> Retriever:
        base: Retriever
        if self.manifest["settings"]["store"] == "qdrant":
            from ragtune.rag.qdrant import QdrantRetriever, QdrantStore

            if self._qdrant is None:
                qs = QdrantSection(**self.manifest["settings"]["qdrant"])
                self._qdrant = QdrantStore.connect(qs, self.folder)
            base = QdrantRetriever(
                self._qdrant, self.embedder(threads), section.mode, section.candidates
            )
        elif section.mode == "bm25" or (
            section.mode == "hybrid" and self.manifest["embedder"] == "none"
        ):
            base = self.bm25()
        elif section.mode == "dense":
            base = self.dense(threads)
        else:
            base = Fused([self.bm25(), self.dense(threads)],
                         [section.bm25_weight, section.dense_weight], section.rrf_k, section.candidates)  # fmt: skip
        if section.rerank != "none":
            from ragtune.rag.rerank import load_reranker

            reranker = load_reranker(section.rerank, threads)
            base = Reranked(base, reranker, section.rerank_candidates, section.rerank_min_score)
        return base

    def close(self) -> None:
        if self._qdrant is not None:
            self._qdrant.close()
            self._qdrant = None
