"""Training data from documents: rule extraction (English and Chinese), the grounding and
duplicate checks with their report, and RAFT proportions and distractors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ragtune.cli import main
from ragtune.example import Example
from ragtune.synth.raft import NO_ORACLE_KIND, corpus_of, make_raft, near_duplicate
from ragtune.synth.rules import extract, heading_question

EN = """# Timetable tool

The timetable tool is a command-line program for station staff. It prints departures.

## How to install the tool

Installation takes two minutes on any laptop.

```bash
# Install the timetable tool
pip install timetable
```

## Platforms

- Platform 1: northbound trains
- Platform 2: southbound trains
"""
ZH = """# 北京大学

北京大学是中国最早的国立综合性大学之一。它位于北京市海淀区。

## 校园景点

- 未名湖
- 博雅塔
"""


def test_rules_read_headings_definitions_lists_and_code() -> None:
    got = {
        (rule, q): a
        for q, a, rule in extract(EN.split("## How")[0].split("\n", 2)[2], ("Timetable tool",))
    }
    assert got[("heading", "What does the documentation say about Timetable tool?")].startswith(
        "The timetable tool is"
    )
    assert (
        got[("definition", "What is timetable tool?")] == "a command-line program for station staff"
    )
    assert heading_question("How to install the tool") == "How do I install the tool?"
    assert heading_question("Why is it late?") == "Why is it late?"
    assert (
        heading_question("Support", "Vela X2")
        == "What does the documentation say about Support in Vela X2?"
    )
    assert heading_question("保修", "维拉路由器") == "关于维拉路由器的保修，文档是怎么说的？"
    code = list(
        extract("```bash\n# Install the timetable tool\npip install timetable\n```\n", ("Install",))
    )
    assert ("How do I install the timetable tool?", "pip install timetable", "code") in code
    lists = list(extract("- Platform 1: north\n- Platform 2: south\n", ("Platforms",)))
    assert (
        "What does the list under Platforms include?",
        "- Platform 1: north\n- Platform 2: south",
        "list",
    ) in lists


def test_rules_in_chinese() -> None:
    got = {
        rule: (q, a) for q, a, rule in extract(ZH.split("\n", 2)[2].split("##")[0], ("北京大学",))
    }
    assert got["heading"] == (
        "关于北京大学，文档是怎么说的？",
        "北京大学是中国最早的国立综合性大学之一。",
    )
    assert got["definition"] == ("北京大学是什么？", "中国最早的国立综合性大学之一")
    lst = list(extract("- 未名湖\n- 博雅塔\n", ("校园景点",)))
    assert lst == [("校园景点包括哪些？", "- 未名湖\n- 博雅塔", "list")]


def test_from_docs_keeps_grounded_pairs_and_reports_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "tool.md").write_text(EN, encoding="utf-8")
    (docs / "pku.md").write_text(ZH, encoding="utf-8")
    (docs / "copy.md").write_text(EN, encoding="utf-8")  # same questions on the same contexts
    out = tmp_path / "qa.jsonl"
    assert main(["data", "from-docs", str(docs), "--out", str(out), "max_answer_tokens=12"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    report = json.loads((tmp_path / "qa.jsonl.report.json").read_text())
    from ragtune.text import answer_in_context, language

    assert rows and all(answer_in_context(r["answers"][0], r["contexts"]) for r in rows)
    assert {r["kind"] for r in rows} >= {"rule_heading", "rule_list", "rule_code"}
    assert any(language(r["question"]) == "zh" for r in rows)
    assert report["dropped"].get("duplicate question on the same context", 0) > 0  # copy.md
    assert any("longer than 12" in reason for reason in report["dropped"])  # the long Chinese ones
    assert report["kept"] == len(rows) and sum(report["made"].values()) == report["kept"] + sum(
        report["dropped"].values()
    )
    assert "dropped" in capsys.readouterr().out
    assert main(["data", "check", str(out)]) == 0  # what it writes is ordinary data


def corpus_examples(n: int = 40) -> list[Example]:
    """Passages that share the question's topic word but little else (hard, not duplicates)."""
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(400)]
    topics = ["river", "harbor", "station", "castle", "bridge", "market", "tower", "garden"]
    exs = []
    for i in range(n):
        t = topics[i % len(topics)]
        filler = " ".join(rng.sample(vocab, 12))
        ctx = f"The {t} {filler} was built in {1800 + i}."
        exs.append(
            Example(f"q{i}", f"When was the {t} built?", [ctx], [str(1800 + i)], group=f"doc{i}")
        )
    return exs


def test_raft_proportions_and_distractors() -> None:
    exs = corpus_examples()
    made, counts = make_raft(exs, corpus_of(exs), k=3, no_oracle_share=0.25, seed=1)
    assert len(made) == 40 and counts["without oracle"] == 10 and counts["with oracle"] == 30
    by_id = {e.id: e for e in exs}
    orders = Counter()
    for m in made:
        src = by_id[m.id.removesuffix("#raft")]
        assert len(m.contexts) == 4
        oracle = src.contexts[0]
        distractors = [c for c in m.contexts if c != oracle]
        assert not any(near_duplicate(d, oracle) for d in distractors)
        assert all(src.answer not in d for d in distractors)  # no distractor holds the answer
        if m.kind == NO_ORACLE_KIND:
            assert oracle not in m.contexts and not m.answerable and m.answers == []
        else:
            assert m.contexts.count(oracle) == 1 and m.answerable
            orders[m.contexts.index(oracle)] += 1
    assert len(orders) > 1  # the oracle is not always passage [1]
    again, _ = make_raft(exs, corpus_of(exs), k=3, no_oracle_share=0.25, seed=1)
    assert [e.contexts for e in again] == [e.contexts for e in made]  # seeded


def test_raft_cli_and_too_small_a_corpus(tmp_path: Path) -> None:
    src = tmp_path / "qa.jsonl"
    src.write_text(
        "".join(json.dumps(e.to_dict()) + "\n" for e in corpus_examples(12)), encoding="utf-8"
    )
    assert (
        main(["data", "raft", str(src), "--out", str(tmp_path / "raft.jsonl"), "distractors=2"])
        == 0
    )
    assert len((tmp_path / "raft.jsonl").read_text().splitlines()) == 12
    assert (
        main(["data", "raft", str(src), "--out", str(tmp_path / "r2.jsonl"), "distractors=20"]) == 2
    )


def test_raft_cite_targets_name_the_oracle_and_metrics_ignore_the_marker() -> None:
    from ragtune.eval.metrics import score_example
    from ragtune.prompt.grounded import PromptConfig, build_messages
    from ragtune.rag.chunk import Chunk
    from ragtune.rag.cite import cite
    from ragtune.rag.retrieve import Passage

    exs = corpus_examples(16)
    made, _ = make_raft(exs, corpus_of(exs), k=2, no_oracle_share=0.0, seed=3, cite=True)
    by_id = {e.id: e for e in exs}
    for m in made:
        src = by_id[m.id.removesuffix("#raft")]
        n = m.contexts.index(src.contexts[0]) + 1
        assert m.answers == [f"{src.answer} [{n}]"]
        row = score_example(m, m.answers[0])
        assert row["em"] == 1.0 and row["prediction"].endswith(f"[{n}]")  # scored without it, kept
        ps = [Passage(Chunk(str(i), "f", (), 0, 1, t), 1.0) for i, t in enumerate(m.contexts)]
        assert cite(m.answers[0], ps) == [n]
    assert "as [n]" in build_messages("q", ["p"], PromptConfig(cite=True))[0]["content"]


def test_raft_distractors_hold_none_of_several_answers() -> None:
    exs = corpus_examples(24)
    # a second acceptable answer that other passages contain ("The tower" is in several)
    exs = [
        Example(e.id, e.question, e.contexts, [e.answer, e.question.split()[3]], group=e.group)
        for e in exs
    ]
    made, counts = make_raft(exs, corpus_of(exs), k=1, no_oracle_share=0.0, seed=0)
    by_id = {e.id: e for e in exs}
    for m in made:
        src = by_id[m.id.removesuffix("#raft")]
        for d in (c for c in m.contexts if c != src.contexts[0]):
            assert not any(a in d for a in src.answers)
