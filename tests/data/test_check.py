"""data check: counts, duplicates, missing answers, overlap and token lengths on handcrafted
data whose expected numbers are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.data.check import CheckConfig, format_report, opening, run, stats
from ragtune.data.normalize import answer_in_context

PARIS = "The Eiffel Tower is in Paris. It was built in 1889."
MOON = "Apollo 11 landed on the Moon in 1969. Someone stayed in orbit."
ZH = "北京大学创办于1898年，位于北京。"

ROWS = [
    # 1-3: one question on one context three times: an exact repeat and a conflicting answer.
    {"id": "a", "context": PARIS, "question": "Where is the tower?", "answer": "Paris"},
    {"id": "b", "context": PARIS, "question": "Where is the tower?", "answer": "Paris"},
    {"id": "c", "context": PARIS, "question": "where is the tower", "answer": "Lyon"},  # not in ctx
    {"id": "d", "context": MOON, "question": "Who walked first?", "answer": ""},  # unanswerable
    {"id": "e", "context": MOON, "question": "When did Apollo 11 land?", "answer": "1969."},
    {
        "id": "f",
        "context": MOON,
        "question": "Who stayed in orbit?",
        "answer": "one",
    },  # word match only inside "Someone"
    {
        "id": "g",
        "context": ZH,
        "question": "北京大学哪一年创办？",
        "answer": "1898",
    },  # no spaces in Chinese
    {"id": "h", "contexts": ["", MOON], "question": "When did Apollo 11 land?", "answer": "1969"},
]


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_answer_in_context_per_language() -> None:
    assert answer_in_context("paris", [PARIS])
    assert answer_in_context("Paris.", [PARIS])  # punctuation and case are ignored
    assert not answer_in_context("one", [MOON])  # English: whole words only
    assert answer_in_context("1898", [ZH])  # Chinese: "1898" inside "1898年"
    assert answer_in_context("北京", [ZH])
    assert not answer_in_context("上海", [ZH])
    # Chinese question words sit at the end: that is the question's pattern
    assert opening("北京大学哪一年创办？") == "…年创办"
    assert opening("Where is the Eiffel Tower?") == "where is the"


def test_stats() -> None:
    assert stats([]) is None
    assert stats([5, 1, 3, 2, 4]) == {"min": 1, "median": 3, "p95": 5, "max": 5, "mean": 3.0}


def test_check_counts_duplicates_and_answers(tmp_path: Path) -> None:
    report = run(CheckConfig(data=str(jsonl(tmp_path / "train.jsonl", ROWS))))
    c = report["counts"]
    assert report["format"] == "cqa-jsonl"
    assert (c["examples"], c["answerable"], c["unanswerable"]) == (8, 7, 1)
    # groups are context hashes: PARIS, MOON, ZH, and ["", MOON] (a different context list)
    assert c["groups"] == 4 and c["largest_group"] == 3
    assert c["distinct_contexts"] == 4  # PARIS, MOON, ZH and the blank passage
    assert c["languages"] == {"en": 7, "zh": 1}

    d = report["duplicates"]
    assert d["same_question_and_context"] == {"count": 2, "ids": ["b", "c"]}
    assert d["exact"] == {"count": 1, "ids": ["b"]}
    assert d["conflicting_answers"] == {"count": 1}
    # "where is the tower" (Paris / Lyon); "when did apollo 11 land" has "1969." and "1969" on
    # two contexts, the same answer once normalized
    assert d["same_question_different_answers"] == {"count": 1, "questions": ["where is the tower"]}
    assert d["duplicate_ids"]["count"] == 0

    missing = report["answers_not_in_context"]["none_found"]
    assert (missing["count"], missing["ids"]) == (2, ["c", "f"])
    assert missing["share"] == round(2 / 7, 4)
    assert report["empty"]["blank_passage"]["ids"] == ["h"]
    assert report["empty"]["no_context"]["count"] == 0

    v = report["diversity"]
    assert v["distinct_questions"] == 5  # "where is the tower" x3 and "when did..." x2 collapse
    assert v["top_openings"][0] == ["where is the", 3, round(3 / 8, 4)]
    assert v["distinct_openings"] == 5  # the Chinese one is "…年创办"

    assert report["lengths"]["chars"]["question"]["max"] == len("When did Apollo 11 land?")
    assert report["lengths"]["tokens"] is None
    assert report["overlap"] is None
    assert any("conflicting" in w for w in report["warnings"])


def test_check_empty_question_is_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text(
        f"context,question,answer\n{PARIS},Where?,Paris\n{PARIS},,Paris\n", encoding="utf-8"
    )
    report = run(CheckConfig(data=str(path)))
    assert report["counts"]["examples"] == 1
    assert report["empty"]["question"] == {"count": 1, "where": [f"{path}:3"]}
    assert "1 records with an empty question (left out)" in report["warnings"]


def test_check_overlap(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", ROWS)
    evals = jsonl(
        tmp_path / "eval.jsonl",
        [
            {"context": MOON, "question": "What landed?", "answer": "Apollo 11"},  # shared context
            {
                "context": "Mars is red.",
                "question": "Where is the tower?",
                "answer": "",
            },  # shared question
            {"context": "Mars is red.", "question": "What color is Mars?", "answer": "red"},
            {"context": ZH, "question": "北京大学哪一年创办？", "answer": "1898"},  # full duplicate
        ],
    )
    report = run(CheckConfig(data=str(train), eval_data=str(evals)))
    o = report["overlap"]
    assert o["eval_examples"] == 4
    assert o["shared_groups"] == 2  # hash groups of MOON and ZH
    assert o["shared_contexts"] == 2
    assert o["shared_questions"] == 2
    assert o["eval_examples_with_shared_context"] == 2
    assert o["eval_examples_duplicating_train"] == 1
    assert any("train/eval leak" in w for w in report["warnings"])


def test_report_saved_and_formatted(tmp_path: Path) -> None:
    data = jsonl(tmp_path / "train.jsonl", ROWS)
    before = data.read_bytes()
    report = run(CheckConfig(data=str(data), out=str(tmp_path / "out" / "check.md")))
    assert data.read_bytes() == before
    saved = json.loads((tmp_path / "out" / "check.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(report))
    text = (tmp_path / "out" / "check.md").read_text(encoding="utf-8")
    assert text == format_report(report)
    for heading in (
        "## Warnings",
        "## Counts",
        "## Problems",
        "## Lengths (characters)",
        "## Question diversity",
    ):
        assert heading in text
    assert "| examples | 8 |" in text
    assert "| answerable, no gold answer in context | 2 (28.6%) | c, f |" in text


def test_token_lengths_with_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    from ragtune.data.importers import load_examples
    from ragtune.models import load_tokenizer
    from ragtune.prompt.encode import encode_example
    from ragtune.prompt.grounded import PromptConfig

    rows = [
        dict(ROWS[0]),
        {"context": PARIS + " " + "Tall iron lattice. " * 60, "question": "Q?", "answer": "Paris"},
    ]
    data = jsonl(tmp_path / "train.jsonl", rows)
    tokenizer = load_tokenizer(str(tiny_model_dir))
    lengths = [
        len(encode_example(tokenizer, ex, PromptConfig(), 1 << 30)["input_ids"])
        for ex in load_examples(data)
    ]
    max_length = (lengths[0] + lengths[1]) // 2  # the long example is over, the short one not
    assert lengths[0] <= max_length < lengths[1]

    report = run(CheckConfig(data=str(data), model=str(tiny_model_dir), max_length=max_length))
    t = report["lengths"]["tokens"]
    assert (t["measured"], t["of"], t["truncated"], t["truncated_share"]) == (2, 2, 1, 0.5)
    assert (t["total"]["min"], t["total"]["max"]) == (min(lengths), max(lengths))
    assert t["answer"]["min"] >= 1
    assert "Lengths (tokens of" in format_report(report)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_length"):
        CheckConfig(data="x", max_length=0)


def test_report_never_lands_on_the_data(tmp_path: Path) -> None:
    """`--out w/squad.md` used to write the JSON report over w/squad.json."""
    from ragtune.errors import RagtuneError

    data = jsonl(tmp_path / "squad.json", ROWS)  # JSONL inside a .json, as people do
    before = data.read_bytes()
    for out in (tmp_path / "squad.md", tmp_path / "squad.json", tmp_path / "squad"):
        with pytest.raises(RagtuneError, match=r"would overwrite the input data="):
            run(CheckConfig(data=str(data), out=str(out)))
    assert data.read_bytes() == before
    run(CheckConfig(data=str(data), out=str(tmp_path / "check.md")))
    assert (tmp_path / "check.json").is_file() and data.read_bytes() == before


def test_duplicate_ids_are_counted_per_record(tmp_path: Path) -> None:
    rows = [
        {"id": "same", "context": f"c{i}", "question": f"q{i}?", "answer": ""} for i in range(50)
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    d = run(CheckConfig(data=str(path)))
    dup = d["duplicates"]["duplicate_ids"]
    assert (dup["count"], dup["distinct"], dup["most"]) == (49, 1, [("same", 50)])
    assert any("49 records reuse 1 ids" in w for w in d["warnings"])
