"""The pipeline: the tuned prompt built from retrieved passages, citations mapped to files and
headings, refusal when nothing relevant is found, routing, and the CLI stages end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.cli import main
from ragtune.generation.abstain import Threshold
from ragtune.prompt.grounded import PromptConfig
from ragtune.rag.chunk import Chunk
from ragtune.rag.cite import cite
from ragtune.rag.index import Index, IndexConfig, build
from ragtune.rag.pipeline import Pipeline
from ragtune.rag.retrieve import Passage
from ragtune.rag.router import EmbeddingRouter, LlmRouter
from ragtune.rag.settings import RetrievalSection


def passages(*texts: str) -> list[Passage]:
    return [
        Passage(Chunk(f"c{i}", f"f{i}.md", ("H", str(i)), 0, len(t), t), 1.0)
        for i, t in enumerate(texts)
    ]


def test_cite_finds_the_passages_holding_the_answer() -> None:
    ps = passages(
        "The pump runs at 40 bar.", "Ada Quill founded Marlowe Station.", "Ada Quill also sailed."
    )
    assert cite("Ada Quill", ps) == [2, 3]
    assert cite("40 bar", ps) == [1]
    assert cite("See [2].", ps) == [2]  # a marker the model wrote is taken as it is
    assert cite("[7] nonsense", ps) == []  # ... only when it points at a passage
    assert cite("Marlowe Station was founded by Ada Quill", ps) == [2]  # paraphrase: most overlap
    assert cite("zebra", ps) == []
    assert cite("海淀区", passages("北京大学位于北京市海淀区。")) == [1]


@pytest.fixture
def index(tmp_path: Path, docs: Path) -> Index:
    build(IndexConfig(docs=[str(docs)], out=str(tmp_path / "idx"), embedder="none"))
    return Index.open(tmp_path / "idx")


def test_ask_builds_the_tuned_prompt_and_cites_file_and_heading(index: Index, scripted) -> None:  # type: ignore[no-untyped-def]
    gen = scripted(lambda m: "Ada Quill")
    pipe = Pipeline(index.retriever(RetrievalSection(mode="bm25", k=2)), gen)
    a = pipe.ask("Who founded Marlowe Station?")
    assert a.text == "Ada Quill" and not a.refused
    assert [c.heading for c in a.citations] == [("Marlowe Station",)]
    assert a.citations[0].file.endswith("guide.md")
    user = gen.calls[0][0][1]["content"]
    assert user.startswith("Context:\n[1] Marlowe Station was founded by Ada Quill")
    assert user.endswith("Question: Who founded Marlowe Station?")
    assert "only the numbered context passages" in gen.calls[0][0][0]["content"]


def test_nothing_retrieved_is_refused_without_asking_the_model(index: Index, scripted) -> None:  # type: ignore[no-untyped-def]
    gen = scripted(lambda m: "made up")
    pipe = Pipeline(index.retriever(RetrievalSection(mode="bm25")), gen)
    a = pipe.ask("zebra xylophone?")
    assert a.refused and a.text == PromptConfig().refusal_en and a.citations == []
    assert gen.calls == []
    zh = pipe.ask("斑马？")
    assert zh.refused and zh.text == PromptConfig().refusal_zh


def test_a_refusal_cites_nothing(index: Index, scripted) -> None:  # type: ignore[no-untyped-def]
    pipe = Pipeline(
        index.retriever(RetrievalSection(mode="bm25")),
        scripted(lambda m: PromptConfig().refusal_en),
    )
    a = pipe.ask("Who founded Marlowe Station?")
    assert a.refused and a.citations == [] and a.passages


def test_calibrated_threshold_decides_refusal(index: Index, tiny_model_dir: Path) -> None:
    from ragtune.generation.load import GenerateConfig, load_generator

    gen = load_generator(GenerateConfig(model=str(tiny_model_dir), max_new_tokens=4))
    retriever = index.retriever(RetrievalSection(mode="bm25", k=2))
    everything = Pipeline(retriever, gen, threshold=Threshold(0.0), max_new_tokens=4).ask(
        "Who founded Marlowe Station?"
    )
    nothing = Pipeline(retriever, gen, threshold=Threshold(1.0), max_new_tokens=4).ask(
        "Who founded Marlowe Station?"
    )
    assert everything.refused and everything.refusal_score is not None
    assert not nothing.refused and nothing.text != PromptConfig().refusal_en
    # per-language thresholds: an English question is decided at English's own
    en_zero = Threshold.of(1.0, {"en": 0.0})
    en_one = Threshold.of(0.0, {"en": 1.0})
    asked = [
        Pipeline(retriever, gen, threshold=t, max_new_tokens=4).ask("Who founded Marlowe Station?")
        for t in (en_zero, en_one)
    ]
    assert asked[0].refused and not asked[1].refused


class BagOfWords:
    """A deterministic embedder: counts of hashed words (enough to test routing logic)."""

    name = "bow"

    def embed(self, texts):  # type: ignore[no-untyped-def]
        import zlib

        import numpy as np

        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().replace("?", " ").split():
                out[i, zlib.crc32(w.encode()) % 256] += 1  # hash() differs per process
        return out


def test_embedding_router_sends_arithmetic_straight_to_the_model(index: Index, scripted) -> None:  # type: ignore[no-untyped-def]
    routes = {"rag": ["who founded the station", "when does the last train leave"],
              "direct": ["what is 2 plus 2", "hello there"]}  # fmt: skip
    router = EmbeddingRouter(BagOfWords(), routes, min_similarity=0.2)
    assert router.route("what is 7 plus 5") == "direct"
    assert router.route("who founded the harbor") == "rag"
    assert router.route("zzz qqq") == "rag"  # nothing similar: the default route
    gen = scripted(lambda m: "12")
    pipe = Pipeline(index.retriever(RetrievalSection(mode="bm25")), gen, router=router)
    a = pipe.ask("what is 7 plus 5")
    assert a.route == "direct" and a.passages == [] and a.text == "12"
    assert gen.calls[0] == [[{"role": "user", "content": "what is 7 plus 5"}]]


def test_llm_router_takes_the_label_the_model_names(scripted) -> None:  # type: ignore[no-untyped-def]
    router = LlmRouter(scripted(lambda m: "Direct."), {"rag": ["policy?"], "direct": ["2+2?"]})
    assert router.route("2+3?") == "direct"
    assert (
        LlmRouter(scripted(lambda m: "no idea"), {"rag": ["x"], "direct": ["y"]}).route("q")
        == "rag"
    )


def test_cli_index_ask_json_and_eval_retrieval(
    tmp_path: Path, docs: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idx = tmp_path / "cli-idx"
    assert main(["index", str(docs), "--out", str(idx), "embedder=none"]) == 0
    assert "3 files" in capsys.readouterr().out
    assert main(["ask", str(idx), "Who founded Marlowe Station?", "--json", "--mode", "bm25",
                 "--model", str(tiny_model_dir), "gen.max_new_tokens=4"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)  # stdout is the JSON object alone
    assert out["question"] == "Who founded Marlowe Station?"
    assert out["passages"][0]["heading"] == ["Marlowe Station"]
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"id": "1", "question": "Who founded Marlowe Station?", "context": "Marlowe Station was founded by Ada Quill in 1871. It lies on the northern coast.", "answer": "Ada Quill"},
        {"id": "2", "question": "How much is docking per night?", "context": "Docking costs 40 euros per night.", "answer": "40 euros"},
        {"id": "3", "question": "Which piers exist?", "context": "Text that is in no document at all.", "answer": "none"},
    ]  # fmt: skip
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert (
        main(
            [
                "eval-retrieval",
                str(idx),
                "--data",
                str(qa),
                "modes=bm25",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    res = json.loads((tmp_path / "r" / "retrieval.json").read_text())["modes"]["bm25"]
    assert res["questions"] == 2  # the third's passage is not in the index
    assert res["recall@1"] == 100.0 and res["mrr"] == 1.0


def test_eval_with_index_scores_end_to_end(
    tmp_path: Path, docs: Path, tiny_model_dir: Path
) -> None:
    from ragtune.eval import stage as evaluate
    from ragtune.eval.stage import EvalConfig
    from ragtune.generation.load import GenerateConfig

    build(IndexConfig(docs=[str(docs)], out=str(tmp_path / "idx"), embedder="none"))
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"id": "1", "question": "Who founded Marlowe Station?", "context": "Marlowe Station was founded by Ada Quill in 1871. It lies on the northern coast.", "answer": "Ada Quill"},
        {"id": "2", "question": "zebra xylophone?", "context": "Docking costs 40 euros per night.", "answer": "40 euros"},
    ]  # fmt: skip
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    m = evaluate.run(EvalConfig(data=str(qa), out=str(tmp_path / "e2e"), index=str(tmp_path / "idx"),
                                retrieval=RetrievalSection(mode="bm25", k=2), semantic=False, latency_questions=0,
                                gen=GenerateConfig(model=str(tiny_model_dir), max_new_tokens=4)))  # fmt: skip
    assert m["retrieval_miss_rate"] == 50.0  # question 2 finds nothing
    preds = [
        json.loads(line)
        for line in (tmp_path / "e2e" / "predictions.jsonl").read_text().splitlines()
    ]
    assert preds[0]["retrieved_relevant"] is True and preds[1]["retrieved"] == []
    # nothing retrieved: refused without asking the model, as the pipeline does
    assert preds[1]["prediction"] == PromptConfig().refusal_en and preds[1]["refused"]
    assert "Own passage not retrieved" in (tmp_path / "e2e" / "report.md").read_text()


def test_citation_accuracy_and_misses_by_hand() -> None:
    from ragtune.eval.end_to_end import score_retrieval
    from ragtune.example import Example

    gold = [
        Example("1", "Who founded it?", ["Ada Quill founded Marlowe Station."], ["Ada Quill"]),
        Example("2", "How much?", ["Docking costs 40 euros."], ["40 euros"]),
        Example("3", "Which year?", ["It opened in 1871."], ["1871"]),
    ]
    found = [
        passages("Ada Quill founded Marlowe Station.", "Trains leave hourly."),
        passages("Trains leave hourly.", "Docking costs 40 euros."),
        passages("Trains leave hourly."),  # its passage was not retrieved
    ]
    rows = [
        {"prediction": "Ada Quill", "refused": False},  # cites [1], which holds the answer
        {"prediction": "Trains", "refused": False},  # cites [1], which does not
        {"prediction": "1871", "refused": False},  # cites nothing
    ]
    m = score_retrieval(rows, gold, found, [[p.text for p in ps] for ps in found])
    assert m["retrieval_miss_rate"] == pytest.approx(100 / 3)
    assert m["citation_accuracy"] == pytest.approx(100 / 3)
    assert [r["citations"] for r in rows] == [[1], [1], []]
    assert [r["cited_correct"] for r in rows] == [True, False, False]


def _copied(text: str, texts: list[str]) -> bool:
    """A span of one text (its first letter may be capitalized)."""
    return any(t in p for t in (text, text[:1].lower() + text[1:]) for p in texts)


@pytest.mark.parametrize("threshold", [None, Threshold(1.0)])
def test_extractive_pipeline_copies_from_the_retrieved_passages(
    index: Index, tiny_model_dir: Path, threshold: Threshold | None
) -> None:
    from ragtune.generation.load import GenerateConfig, load_generator

    gen = load_generator(GenerateConfig(model=str(tiny_model_dir), max_new_tokens=6))
    retriever = index.retriever(RetrievalSection(mode="bm25", k=2))
    questions = ["Who founded Marlowe Station?", "When does the last train leave?"]
    free = Pipeline(retriever, gen, threshold=threshold, max_new_tokens=6).ask_many(questions)
    copied = Pipeline(
        retriever, gen, threshold=threshold, max_new_tokens=6, extractive=True
    ).ask_many(questions)
    for a in copied:
        assert a.text and not a.refused
        assert _copied(a.text, [p.text for p in a.passages]), a.text
    # the random tiny model answers off the passages when free: the constraint did the work
    assert not all(_copied(a.text, [p.text for p in a.passages]) for a in free)
