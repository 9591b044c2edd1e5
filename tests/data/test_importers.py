"""Importers: every format on a good file, malformed files (errors name file, line/record,
field), auto-detection, SQuAD v2 unanswerable handling, and input files left untouched."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ragtune.data.importers import import_data, load_examples
from ragtune.example import DataError, Example, write_jsonl


def write(path: Path, content: Any) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in content))
    else:
        path.write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


CTX_PARIS = "The Eiffel Tower is in Paris. It was built in 1889."
CTX_MOON = "Apollo 11 landed on the Moon in 1969."

SQUAD_V2 = {
    "version": "v2.0",
    "data": [
        {
            "title": "Eiffel_Tower",
            "paragraphs": [
                {
                    "context": CTX_PARIS,
                    "qas": [
                        {
                            "id": "q1",
                            "question": "Where is the Eiffel Tower?",
                            "answers": [
                                {"text": "Paris", "answer_start": 23},
                                {"text": "Paris", "answer_start": 23},
                                {"text": "in Paris", "answer_start": 20},
                            ],
                            "is_impossible": False,
                        },
                        {
                            "id": "q2",
                            "question": "Who painted the Eiffel Tower?",
                            "answers": [],
                            "plausible_answers": [{"text": "Paris", "answer_start": 23}],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        },
        {
            "title": "Apollo",
            "paragraphs": [
                {
                    "context": CTX_MOON,
                    "qas": [
                        {
                            "id": "q3",
                            "question": "When did Apollo 11 land?",
                            "answers": [{"text": "1969", "answer_start": 32}],
                            "is_impossible": False,
                        }
                    ],
                }
            ],
        },
    ],
}


# ---------------------------------------------------------------- SQuAD / CMRC


def test_squad_v2(tmp_path: Path) -> None:
    path = write(tmp_path / "squad.json", SQUAD_V2)
    result = import_data(path)
    assert result.format == "squad"
    q1, q2, q3 = result.examples
    assert q1 == Example(
        id="q1",
        question="Where is the Eiffel Tower?",
        contexts=[CTX_PARIS],
        answers=["Paris", "in Paris"],  # repeats of one span collapse
        answerable=True,
        group="Eiffel_Tower",
    )
    # Unanswerable: the plausible (wrong) span must not become an answer.
    assert (q2.answerable, q2.answers, q2.group) == (False, [], "Eiffel_Tower")
    assert (q3.answers, q3.group) == (["1969"], "Apollo")


def test_squad_v1_and_cmrc_layout(tmp_path: Path) -> None:
    # v1 has no is_impossible; CMRC has article ids but may lack titles.
    data = {
        "version": "cmrc2018",
        "data": [
            {
                "id": "DEV_1",
                "paragraphs": [
                    {
                        "id": "DEV_1_P",
                        "context": "北京大学位于北京。",
                        "qas": [
                            {
                                "id": "a",
                                "question": "北京大学在哪里？",
                                "answers": [{"text": "北京"}],
                            },
                            {
                                "id": "b",
                                "question": "北京大学位于哪个城市？",
                                "answers": [{"text": "北京"}],
                            },
                        ],
                    }
                ],
            },
            {"paragraphs": [{"context": CTX_MOON, "qas": [{"question": "When?", "answers": []}]}]},
        ],
    }
    a, b, c = load_examples(write(tmp_path / "cmrc.json", data))
    assert a.group == b.group == "DEV_1"
    assert a.answerable and a.answers == ["北京"]
    # No title, no ids: the id comes from file/article/paragraph/question, the group from the context.
    assert c.id == "cmrc-1-0-0"
    assert c.group.startswith("ctx-") and not c.answerable


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][1].pop("question"),
            'squad.json: data[0].paragraphs[0].qas[1]: field "question" is missing',
        ),
        (
            lambda d: d["data"][1]["paragraphs"][0]["qas"][0].update(question="  "),
            'squad.json: data[1].paragraphs[0].qas[0]: field "question" is empty',
        ),
        (
            lambda d: d["data"][1]["paragraphs"][0].pop("context"),
            'squad.json: data[1].paragraphs[0]: field "context" is missing',
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(answers=[]),
            'squad.json: data[0].paragraphs[0].qas[0]: field "answers" is empty but "is_impossible" is false',
        ),
        (
            lambda d: d["data"][1]["paragraphs"][0].update(qas="nope"),
            'squad.json: data[1].paragraphs[0]: field "qas" must be a list',
        ),
    ],
)
def test_squad_malformed(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = json.loads(json.dumps(SQUAD_V2))
    mutate(data)
    path = write(tmp_path / "squad.json", data)
    with pytest.raises(DataError) as e:
        load_examples(path)
    assert expected in str(e.value)


def test_broken_json_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.json", '{"data": [\n  {"title": "x",\n  "paragraphs": [}\n]}')
    with pytest.raises(DataError, match=r"broken\.json:3: not valid JSON"):
        load_examples(path)


# ---------------------------------------------------------------- flat records (cqa)


def test_cqa_jsonl(tmp_path: Path) -> None:
    rows = [
        {"context": CTX_PARIS, "question": "Where is it?", "answer": "Paris"},
        {"passage": CTX_PARIS, "query": "Who built it?", "answer": ""},
        {"contexts": [CTX_MOON, CTX_PARIS], "question": "When?", "answers": ["1969", " "]},
        {"document": CTX_MOON, "question": "Q?", "answers": {"text": ["1969"]}, "id": 7},
        {
            "context": CTX_MOON,
            "question": "Q2?",
            "answer": "x",
            "is_impossible": True,
            "title": "T",
        },
    ]
    a, b, c, d, e = load_examples(write(tmp_path / "qa.jsonl", rows))
    assert (a.id, a.answers, a.answerable) == ("qa-1", ["Paris"], True)
    assert (b.id, b.answers, b.answerable) == ("qa-2", [], False)  # empty answer: unanswerable
    assert a.group == b.group and a.group.startswith("ctx-")  # same context, same group
    assert c.contexts == [CTX_MOON, CTX_PARIS] and c.answers == ["1969"]
    assert (d.id, d.answers) == ("7", ["1969"])
    assert (e.answerable, e.answers, e.group) == (False, [], "T")


def test_cqa_jsonl_malformed(tmp_path: Path) -> None:
    rows = [
        '{"context": "c", "question": "q", "answer": "a"}',
        '{"context": "c", "answer": "a"}',
        '{"context": "c", "question": "q", "answers": 5}',
        '{"question": "q", "answer": "a"}',
        '{"context": "c", "question": "q", "answer": "", "answerable": true}',
        '{"context": "c", "question": "q", "answer": "a", "answerable": "maybe"}',
    ]
    path = write(tmp_path / "train.jsonl", "\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_examples(path)
    msg = str(e.value)
    # One run reports every bad line.
    assert 'train.jsonl:2: field "question" is missing' in msg
    assert 'train.jsonl:3: field "answers" must be a string or a list of strings' in msg
    assert 'train.jsonl:4: field "context" is missing' in msg
    assert 'train.jsonl:5: field "answer" is empty but the record says it is answerable' in msg
    assert 'train.jsonl:6: field "answerable" must be true or false' in msg


def test_jsonl_bad_line_and_many_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"context": "c", "question": "q"}\n{"context": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        load_examples(path)
    lines = ['{"context": "c", "question": "q"}'] + ['{"context": "c"}'] * 12
    path = write(tmp_path / "many.jsonl", "\n".join(lines))
    with pytest.raises(DataError) as e:
        load_examples(path)
    assert str(e.value).count('field "question" is missing') == 10
    assert "and 2 more problems" in str(e.value)


CSV = (
    "id,context,question,answer,title\n"
    'r1,"The Eiffel Tower is in Paris.\nIt was built in 1889.",Where is it?,Paris,Eiffel\n'
    "r2,Apollo 11 landed in 1969.,When did it land?,1969,\n"
    "r3,Apollo 11 landed in 1969.,Who flew?,,\n"
)


def test_cqa_csv(tmp_path: Path) -> None:
    a, b, c = load_examples(write(tmp_path / "faq.csv", CSV))
    assert a.contexts == ["The Eiffel Tower is in Paris.\nIt was built in 1889."]
    assert (a.id, a.group, a.answers) == ("r1", "Eiffel", ["Paris"])
    assert b.group == c.group and b.group.startswith("ctx-")
    assert not c.answerable


def test_csv_empty_question_names_row(tmp_path: Path) -> None:
    # Row r2 starts on line 4: the quoted cell of r1 spans lines 2-3.
    path = write(tmp_path / "faq.csv", CSV.replace("When did it land?", ""))
    with pytest.raises(DataError, match=r'faq\.csv:4: field "question" is empty'):
        load_examples(path)
    result = import_data(path, skip_empty_questions=True)
    assert len(result.examples) == 2
    assert result.skipped == {"empty question": 1}
    assert result.skipped_where["empty question"] == [f"{path}:4"]


def test_csv_answers_json_cell_and_tsv(tmp_path: Path) -> None:
    path = write(
        tmp_path / "qa.tsv",
        'context\tquestion\tanswers\tanswerable\nIt is red and blue.\tColors?\t["red", "blue"]\tyes\n',
    )
    (ex,) = load_examples(path)
    assert ex.answers == ["red", "blue"] and ex.answerable


def test_cqa_json_records(tmp_path: Path) -> None:
    rows = [{"context": CTX_PARIS, "question": "Where?", "answer": "Paris"}]
    assert load_examples(write(tmp_path / "a.json", rows))[0].answers == ["Paris"]
    assert load_examples(write(tmp_path / "b.json", {"data": rows}))[0].id == "b-0"
    bad = write(tmp_path / "c.json", rows + [{"context": CTX_PARIS, "question": ""}])
    with pytest.raises(DataError, match=r'c\.json: \[1\]: field "question" is empty'):
        load_examples(bad)


# ---------------------------------------------------------------- instruction / chat formats


def test_alpaca(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Where is the tower?", "input": CTX_PARIS, "output": "Paris"},
        {"instruction": "Write a poem.", "input": "", "output": "Roses..."},
        {
            "instruction": "Answer from the context.",
            "input": f"Context: {CTX_MOON}\nQuestion: When did it land?",
            "output": "The context does not contain the answer.",
        },
    ]
    result = import_data(write(tmp_path / "alpaca.json", rows))
    assert result.format == "alpaca"
    a, c = result.examples
    assert (a.question, a.contexts, a.answers) == ("Where is the tower?", [CTX_PARIS], ["Paris"])
    # Records without a context are not grounded QA: skipped and counted, not an error.
    assert result.skipped == {"no context (not grounded QA)": 1}
    assert (c.question, c.contexts) == ("When did it land?", [CTX_MOON])
    assert not c.answerable  # a refusal reply marks the question unanswerable

    no_context = write(tmp_path / "plain.json", [rows[1]])
    with pytest.raises(DataError, match="no usable records"):
        load_examples(no_context)
    with pytest.raises(DataError, match=r'bad\.jsonl:1: field "output" is missing'):
        load_examples(write(tmp_path / "bad.jsonl", [{"instruction": "q", "input": "c"}]))


def test_sharegpt(tmp_path: Path) -> None:
    rows = [
        {
            "conversations": [
                {"from": "system", "value": f"Answer from the documents.\nContext: {CTX_PARIS}"},
                {"from": "human", "value": "Where is the tower?"},
                {"from": "gpt", "value": "Paris"},
                {"from": "human", "value": "And?"},
                {"from": "gpt", "value": "Nothing."},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": f"Context: {CTX_MOON}\n\nQuestion: Who flew?"},
                {"from": "gpt", "value": ""},
            ]
        },
    ]
    result = import_data(write(tmp_path / "chat.jsonl", rows))
    assert result.format == "sharegpt"
    a, b = result.examples
    assert (a.question, a.contexts, a.answers) == ("Where is the tower?", [CTX_PARIS], ["Paris"])
    assert (b.question, b.contexts, b.answerable) == ("Who flew?", [CTX_MOON], False)

    bad = [{"conversations": [{"from": "human", "value": "Context: c\nQuestion: q"}]}]
    with pytest.raises(DataError, match=r'bad\.jsonl:1: field "conversations" has no assistant'):
        load_examples(write(tmp_path / "bad.jsonl", bad))
    bad = [{"conversations": [{"value": "hi"}]}]
    with pytest.raises(
        DataError, match=r'bad2\.jsonl:1: field "conversations\[0\]\.from" is missing'
    ):
        load_examples(write(tmp_path / "bad2.jsonl", bad))


def test_openai_messages(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": CTX_MOON},  # Azure style: knowledge in the system
                {"role": "user", "content": [{"type": "text", "text": "When did it land?"}]},
                {"role": "assistant", "content": "1969"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": CTX_MOON},
                {"role": "user", "content": "Who was the pilot?"},
                {"role": "assistant", "content": "The requested information is not mentioned."},
            ]
        },
    ]
    result = import_data(write(tmp_path / "azure.jsonl", rows))
    assert result.format == "openai"
    a, b = result.examples
    assert (a.question, a.contexts, a.answers) == ("When did it land?", [CTX_MOON], ["1969"])
    assert not b.answerable and b.answers == []
    assert a.group == b.group

    bad = [
        {"messages": [{"role": "system", "content": "c"}, {"role": "assistant", "content": "a"}]}
    ]
    with pytest.raises(DataError, match=r'bad\.jsonl:1: field "messages" has no user message'):
        load_examples(write(tmp_path / "bad.jsonl", bad))


# ---------------------------------------------------------------- canonical, detection, hf


def test_canonical_roundtrip(tmp_path: Path) -> None:
    ex = Example("x1", "Where?", [CTX_PARIS], ["Paris"], True, "g", "kind")
    path = tmp_path / "canon.jsonl"
    write_jsonl(path, [ex])
    assert import_data(path).format == "canonical"
    assert load_examples(path) == [ex]
    assert load_examples(path, format="canonical") == [ex]
    write(path, '{"id": "x", "question": "q", "contexts": "oops"}\n')
    with pytest.raises(DataError, match=r'canon\.jsonl:1: field "contexts" must be a list'):
        load_examples(path)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("s.json", SQUAD_V2, "squad"),
        ("a.jsonl", [{"context": "c", "question": "q", "answer": "a"}], "cqa-jsonl"),
        ("a.json", [{"context": "c", "question": "q", "answer": "a"}], "cqa-json"),
        ("a.csv", "context,question,answer\nc,q,a\n", "cqa-csv"),
        (
            "a.txt",
            '{"context": "c", "question": "q"}\n{"context": "c", "question": "q2"}\n',
            "cqa-jsonl",
        ),
        # JSONL saved under .json is common: it is still read.
        (
            "m.json",
            '{"context": "c", "question": "q"}\n{"context": "d", "question": "q"}\n',
            "cqa-jsonl",
        ),
        ("al.jsonl", [{"instruction": "q", "input": "c", "output": "a"}], "alpaca"),
        (
            "sg.json",
            [
                {
                    "conversations": [
                        {"from": "human", "value": "Context: c\nQuestion: q"},
                        {"from": "gpt", "value": "a"},
                    ]
                }
            ],
            "sharegpt",
        ),
        (
            "oa.jsonl",
            [
                {
                    "messages": [
                        {"role": "system", "content": "c"},
                        {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a"},
                    ]
                }
            ],
            "openai",
        ),
    ],
)
def test_auto_detection(tmp_path: Path, name: str, content: Any, expected: str) -> None:
    assert import_data(write(tmp_path / name, content)).format == expected


def test_undetectable_and_unknown(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl", [{"foo": 1, "bar": 2}])
    with pytest.raises(DataError, match=r"x\.jsonl:1: cannot tell the data format .*\(bar, foo\)"):
        load_examples(path)
    with pytest.raises(DataError, match="unknown data format 'xml'"):
        load_examples(path, format="xml")
    with pytest.raises(DataError, match=r"nothere\.json: file not found"):
        load_examples(tmp_path / "nothere.json")


def test_explicit_format_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.dat", '[{"context": "c", "question": "q", "answer": "a"}]')
    assert import_data(path, format="cqa-json").format == "cqa-json"
    with pytest.raises(DataError, match=r"qa\.dat: expected a JSON object, got list"):
        load_examples(path, format="squad")


def test_hf_argument_handling(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="no data set name"):
        load_examples("hf:")
    with pytest.raises(DataError, match="disagree"):
        load_examples("other", format="hf:squad_v2")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r"hf:rajpurkar/squad_v2: .*needs the `datasets` package"):
        load_examples("hf:rajpurkar/squad_v2", hf_split="validation")
    with pytest.raises(DataError, match="needs the `datasets` package"):
        load_examples("squad_v2", format="hf")


def test_inputs_never_modified(tmp_path: Path) -> None:
    files = [
        write(tmp_path / "s.json", SQUAD_V2),
        write(tmp_path / "f.csv", CSV),
        write(tmp_path / "q.jsonl", [{"context": "c", "question": "q", "answer": "c"}]),
    ]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    for p in files:
        load_examples(p)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert sorted(tmp_path.iterdir()) == sorted(files)  # nothing written beside them


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # a lost cell: the answer would have become "" and the example unanswerable
        (
            "context,question,answer\nThe sky is blue.,What colour?\n",
            r"f\.csv:2: 2 cells but the header has 3",
        ),
        ("context,question,answer\nc,q,a,extra\n", r"f\.csv:2: 4 cells but the header has 3"),
        # an unbalanced quote swallows the rows after it
        (
            'context,question,answer\n"The sky,What colour?,blue\nc,q,a\n',
            r"f\.csv:\d+: malformed CSV",
        ),
    ],
)
def test_csv_rows_that_lost_cells_or_quotes_are_errors(
    tmp_path: Path, text: str, where: str
) -> None:
    with pytest.raises(DataError, match=where):
        load_examples(write(tmp_path / "f.csv", text))
