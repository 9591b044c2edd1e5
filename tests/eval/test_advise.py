"""`ragtune advise`: the three settings scored on one corpus, and the rule that picks one."""

from __future__ import annotations

import json
from pathlib import Path

from ragtune.eval.advise import ADVICE, AdviseConfig, recommend, run
from ragtune.rag.settings import RetrievalSection


def test_recommend_prefers_the_simplest_setting_within_the_margin() -> None:
    assert (
        recommend({"base + RAG": 60.0, "tuned, closed-book": 20.0, "tuned + RAG": 61.5}, 2.0)
        == "base + RAG"
    )
    assert (
        recommend({"base + RAG": 40.0, "tuned, closed-book": 70.0, "tuned + RAG": 71.0}, 2.0)
        == "tuned, closed-book"
    )
    assert (
        recommend({"base + RAG": 40.0, "tuned, closed-book": 50.0, "tuned + RAG": 75.0}, 2.0)
        == "tuned + RAG"
    )


def test_advise_scores_three_ways_and_writes_the_advice(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path
) -> None:
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "a.md").write_text(
        "# Station\n\nMarlowe Station was founded by Ada Quill in 1871.\n", encoding="utf-8"
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "1", "question": "Who founded Marlowe Station?",
                              "context": "Marlowe Station was founded by Ada Quill in 1871.", "answer": "Ada Quill"}) + "\n")  # fmt: skip
    r = run(AdviseConfig(docs=[str(docs)], questions=str(qa), out=str(tmp_path / "adv"), model=str(tiny_model_dir),
                         adapter=str(tiny_adapter_dir), max_new_tokens=4, retrieval=RetrievalSection(mode="bm25")))  # fmt: skip
    assert list(r["table"]) == ["base + RAG", "tuned, closed-book", "tuned + RAG"]
    assert r["table"]["tuned, closed-book"]["retrieval_miss_rate"] is None  # no retrieval there
    assert r["table"]["tuned + RAG"]["retrieval_miss_rate"] == 0.0
    assert ADVICE[r["choice"]] in (tmp_path / "adv" / "advice.md").read_text()
    assert r["choice"] == recommend({k: v["f1"] or 0.0 for k, v in r["table"].items()}, 2.0)

    def prompt_tokens(run: str) -> int:
        rows = (tmp_path / "adv" / run / "predictions.jsonl").read_text().splitlines()
        return json.loads(rows[0])["prompt_tokens"]

    # closed-book really left the passage out; the RAG runs had it in their prompt
    assert (
        prompt_tokens("tuned-closed-book") < prompt_tokens("tuned-RAG") == prompt_tokens("base-RAG")
    )
