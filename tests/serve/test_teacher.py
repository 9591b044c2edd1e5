"""from-docs with a teacher behind a real OpenAI-compatible server on loopback: grounded
pairs kept, ungrounded ones counted, and a re-run (or a killed run) resumes from the cache."""

from __future__ import annotations

import json
from pathlib import Path

from ragtune.synth import from_docs
from ragtune.synth.teacher import parse_pairs
from tests.serve.conftest import scripted_pool

DOC = "# Station\n\nMarlowe Station was founded by Ada Quill in 1871.\n\n# Harbor\n\nThe harbor has twelve piers and a lighthouse.\n"


def reply(messages) -> str:  # type: ignore[no-untyped-def]
    passage = messages[-1]["content"].split("Passage:\n", 1)[1]
    words = passage.split()
    return json.dumps([
        {"question": "What is named first?", "answer": " ".join(words[:2]), "quote": ""},
        {"question": "Who is the mayor?", "answer": "Zebra Xylophone", "quote": "not in the passage"},
        {"question": "How does it open?", "answer": "an opening phrase", "quote": " ".join(words[:3])},
    ])  # fmt: skip


def test_parse_pairs_skips_malformed_entries() -> None:
    got = parse_pairs('Sure! [{"question": "q", "answer": "a"}, {"question": 3}, "x"]')
    assert got == [{"question": "q", "answer": "a", "quote": ""}]


def test_teacher_pairs_are_grounded_counted_and_resumable(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(scripted_pool(reply))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text(DOC, encoding="utf-8")
    out = tmp_path / "qa.jsonl"
    cfg = from_docs.FromDocsConfig(docs=[str(docs)], out=str(out), teacher="openai:base",
                                   teacher_api_base=url + "/v1")  # fmt: skip
    r = from_docs.run(cfg)
    t = r["teacher"]
    assert t["chunks"] == 2 and t["requests"] == 2 and t["failures"] == 0 and t["ungrounded"] == 2
    assert t["quote_only"] == 2  # kept: the quote is in the chunk, though the answer is not
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    teacher = [x for x in rows if x["kind"] == "teacher"]
    assert {x["answers"][0] for x in teacher} == {
        "Marlowe Station",
        "The harbor",
        "an opening phrase",
    }
    assert r["dropped"]["teacher pair not grounded in its chunk"] == 2
    again = from_docs.run(cfg)["teacher"]
    assert again["requests"] == 0 and again["cached"] == 2  # nothing asked twice
    cache = Path(str(out) + ".teacher.jsonl")
    cache.write_text(cache.read_text().splitlines()[0] + "\n" + '{"chunk": "torn', encoding="utf-8")
    resumed = from_docs.run(cfg)["teacher"]
    assert resumed["requests"] == 1 and resumed["cached"] == 1  # a killed run: only the rest
    assert from_docs.run(cfg)["teacher"]["requests"] == 0  # the resumed row was written whole


def test_the_request_is_in_the_chunks_language_after_one_worked_example() -> None:
    from ragtune.synth.teacher import messages_for

    zh = messages_for("马洛车站由艾达·奎尔于1871年建立。", 3)
    en = messages_for("Marlowe Station was founded by Ada Quill in 1871.", 3)
    assert [m["role"] for m in zh] == ["system", "user", "assistant", "user"]
    assert (
        "段落" in zh[-1]["content"]
        and "马洛车站" in zh[-1]["content"]
        and "3个" in zh[-1]["content"]
    )
    assert "Passage:" in en[-1]["content"] and "Write 3 questions" in en[-1]["content"]
    assert json.loads(en[2]["content"])[0]["answer"] == "1889"  # the worked example parses
