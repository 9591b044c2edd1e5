"""`ragtune index DOCS... --out INDEX`: build or update an index folder (`rag.index`).

Prints what was embedded, kept, removed and skipped (each unreadable file by name), the
index size and the time; exits with an error only when nothing at all could be indexed.

    ragtune index docs/ handbook.pdf --out my-index chunk_size=200
"""

from __future__ import annotations

from ragtune.rag.index import BuildReport, IndexConfig, build

Config = IndexConfig


def run(cfg: IndexConfig) -> BuildReport:
    return build(cfg)


def show(r: BuildReport) -> None:
    print(
        f"index {r.folder}: {r.files} files, {r.chunks} chunks, embedder {r.embedder}; "
        f"{len(r.embedded)} embedded, {len(r.unchanged)} unchanged, {len(r.removed)} removed; "
        f"{r.bytes / 1e6:.1f} MB in {r.seconds:.1f} s"
    )
    for name in r.removed:
        print(f"  removed {name}")
    for note in r.notes:
        print(f"  note: {note}")
    for problem in r.problems:
        print(f"  skipped: {problem}")
