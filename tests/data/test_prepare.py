"""data prepare: drops counted per reason, a split that leaks no group and no context, the same
files for the same seed, and the input file untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.data.importers import load_examples
from ragtune.data.prepare import PrepareConfig, run
from ragtune.data.split import split_indices, split_units
from ragtune.errors import RagtuneError
from ragtune.example import DataError, Example, write_jsonl


def make_rows() -> list[dict]:
    """20 articles x 3 questions, plus one passage shared by two articles, plus one bad row per
    drop rule."""
    rows = []
    for a in range(20):
        ctx = f"Article {a} says the code word is w{a}x and the year is {1900 + a}."
        rows += [
            {
                "title": f"art{a}",
                "context": ctx,
                "question": f"What is the code word in {a}?",
                "answer": f"w{a}x",
            },
            {
                "title": f"art{a}",
                "context": ctx,
                "question": f"What year is in {a}?",
                "answer": str(1900 + a),
            },
            {"title": f"art{a}", "context": ctx, "question": f"Who wrote {a}?", "answer": ""},
        ]
    shared = "A passage quoted by two articles: the river is the Tessa."
    rows += [
        {"title": "art3", "context": shared, "question": "Which river (3)?", "answer": "Tessa"},
        {"title": "art7", "context": shared, "question": "Which river (7)?", "answer": "the Tessa"},
    ]
    rows += [
        dict(rows[0]),  # duplicate
        {"title": "art1", "context": "Article 1 text.", "question": "Odd?", "answer": "not there"},
        {"title": "art2", "context": "  ", "question": "No context?", "answer": ""},
        {"title": "art2", "context": "Article 2 text.", "question": " ", "answer": "x"},
    ]
    return rows


def write_data(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in make_rows()), encoding="utf-8")
    return path


def test_prepare_drops_splits_and_writes(tmp_path: Path) -> None:
    data = write_data(tmp_path / "raw.jsonl")
    before = data.read_bytes()
    out = tmp_path / "prepared"
    summary = run(PrepareConfig(data=str(data), out=str(out), eval_fraction=0.2, seed=1))

    assert data.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [
        "eval.jsonl",
        "prepare_report.json",
        "train.jsonl",
    ]
    assert summary["imported"] == 66
    assert summary["dropped"] == {
        "empty_question": 1,
        "no_context": 1,
        "answer_not_in_context": 1,
        "duplicate": 1,
    }
    train, evals = (
        load_examples(out / "train.jsonl", "canonical"),
        load_examples(out / "eval.jsonl", "canonical"),
    )
    assert len(train) + len(evals) == 62
    assert (summary["train"]["examples"], summary["eval"]["examples"]) == (len(train), len(evals))
    assert len((out / "eval.jsonl").read_text().splitlines()) == len(evals)
    assert 0.1 <= len(evals) / 62 <= 0.3  # about eval_fraction, in whole articles

    # No group and no passage on both sides; art3 and art7 share a passage, so they go together.
    assert not {e.group for e in train} & {e.group for e in evals}
    assert not {c for e in train for c in e.contexts} & {c for e in evals for c in e.contexts}
    side = {e.group: "train" for e in train} | {e.group: "eval" for e in evals}
    assert side["art3"] == side["art7"]

    saved = json.loads((out / "prepare_report.json").read_text())
    assert saved["dropped"] == summary["dropped"] and saved["config"]["seed"] == 1


def test_prepare_is_deterministic_per_seed(tmp_path: Path) -> None:
    data = write_data(tmp_path / "raw.jsonl")

    def eval_bytes(seed: int, name: str) -> bytes:
        run(PrepareConfig(data=str(data), out=str(tmp_path / name), seed=seed, eval_fraction=0.2))
        return (tmp_path / name / "eval.jsonl").read_bytes()

    assert eval_bytes(0, "a") == eval_bytes(0, "b")
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (
        tmp_path / "b" / "train.jsonl"
    ).read_bytes()
    assert any(eval_bytes(seed, f"s{seed}") != eval_bytes(0, "a") for seed in (1, 2, 3))


def test_drop_rules_can_be_switched_off(tmp_path: Path) -> None:
    data = write_data(tmp_path / "raw.jsonl")
    summary = run(
        PrepareConfig(
            data=str(data),
            out=str(tmp_path / "out"),
            drop_duplicates=False,
            drop_answer_not_in_context=False,
            drop_no_context=False,
        )
    )
    assert summary["dropped"] == {"empty_question": 1}
    assert summary["train"]["examples"] + summary["eval"]["examples"] == 65
    with pytest.raises(DataError, match=r'raw\.jsonl:66: field "question" is empty'):
        run(PrepareConfig(data=str(data), out=str(tmp_path / "o2"), drop_empty_questions=False))


def test_max_examples_and_conflicts(tmp_path: Path) -> None:
    data = write_data(tmp_path / "raw.jsonl")
    summary = run(PrepareConfig(data=str(data), out=str(tmp_path / "out"), max_examples=30))
    assert summary["train"]["examples"] + summary["eval"]["examples"] == 30
    assert summary["cut_by_max_examples"] == 32

    rows = [
        {"context": "The sky is blue.", "question": "Color?", "answer": "blue"},
        {"context": "The sky is blue.", "question": "color", "answer": ""},  # conflicting
        {"context": "It is red or crimson.", "question": "Hue?", "answer": "red"},
        {"context": "It is red or crimson.", "question": "Hue?", "answer": "crimson"},  # merged
    ]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run(PrepareConfig(data=str(path), out=str(tmp_path / "small"), eval_fraction=0.0))
    assert summary["dropped"] == {"conflicting_answerability": 2, "duplicate": 1}
    assert summary["changed"] == {"duplicate_answers_merged": 1}
    (kept,) = load_examples(tmp_path / "small" / "train.jsonl", "canonical")
    assert kept.answers == ["red", "crimson"]
    assert (tmp_path / "small" / "eval.jsonl").read_text() == ""


def test_never_overwrites_input(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"context": "c is c", "question": "q", "answer": "c"}) + "\n")
    before = data.read_bytes()
    with pytest.raises(RagtuneError, match="would overwrite the input data="):
        run(PrepareConfig(data=str(data), out=str(tmp_path)))
    assert data.read_bytes() == before


def test_split_units_join_shared_passages() -> None:
    exs = [
        Example("1", "q", ["p1"], group="A"),
        Example("2", "q", ["p2"], group="B"),
        Example("3", "q", ["P1 "], group="C"),  # same passage as 1 once normalized
        Example("4", "q", ["p4"], group="B"),
    ]
    assert split_units(exs) == [[0, 2], [1, 3]]
    train, evals, cut = split_indices(exs, eval_fraction=0.5, seed=0)
    assert sorted(train + evals) == [0, 1, 2, 3] and len(evals) == 2 and cut == 0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="eval_fraction"):
        PrepareConfig(data="x", out="y", eval_fraction=1.0)


def test_max_examples_samples_whole_articles_in_file_order() -> None:
    """One meaning in every stage: whole groups drawn by the seed, the last one trimmed."""
    from ragtune.data.split import sample

    exs = [
        Example(f"{g}{i}", f"q{g}{i}?", [f"passage {g}"], ["a"], group=g)
        for g in "abcdef"
        for i in range(3)
    ]
    picked = sample(exs, 7, seed=0)
    assert len(picked) == 7 and picked == sorted(picked, key=exs.index)  # file order kept
    groups = [e.group for e in picked]
    full = [g for g in set(groups) if groups.count(g) == 3]
    assert len(full) == 2 and len(set(groups)) == 3  # two whole articles and part of a third
    assert sample(exs, 7, seed=0) == picked and sample(exs, 7, seed=1) != picked
    assert sample(exs, None, seed=0) == exs and sample(exs, 100, seed=0) == exs


def test_prepare_makes_ids_unique(tmp_path: Path) -> None:
    """Distinct examples sharing an id are renamed, so eval accepts prepare's own output."""
    rows = [
        Example("same", f"Where is tower {i}?", [f"Tower {i} is in Rome."], ["Rome"], group=f"g{i}")
        for i in range(6)
    ]
    src = tmp_path / "d.jsonl"
    write_jsonl(src, rows)
    summary = run(PrepareConfig(data=str(src), out=str(tmp_path / "out"), eval_fraction=0.0))
    ids = [e.id for e in load_examples(tmp_path / "out" / "train.jsonl")]
    assert len(set(ids)) == 6 and ids[0] == "same" and "same-2" in ids
    assert summary["changed"]["duplicate_ids_renamed"] == 5


def test_prepare_refuses_a_folder_holding_other_files(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonl"
    write_jsonl(src, [Example("a", "q?", ["c a"], ["a"])])
    with pytest.raises(RagtuneError, match="would overwrite the input data="):
        run(PrepareConfig(data=str(src), out=str(tmp_path)))  # the input is inside out
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"holds other files \(notes.txt\)"):
        run(PrepareConfig(data=str(src), out=str(tmp_path / "out")))
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_split_holds_out_every_language() -> None:
    """2 large English articles among 20 small Chinese documents: each seed's held-out side
    has both languages, about eval_fraction of each (an unstratified draw often held out
    Chinese only, and calibration then never saw English)."""
    en = [
        Example(f"en{g}{i}", f"Who is {i}?", [f"passage {g}"], ["a"], group=f"en{g}")
        for g in range(2)
        for i in range(10)
    ]
    zh = [
        Example(f"zh{g}", "谁创立了公司？", [f"文档 {g}"], ["甲"], group=f"zh{g}")
        for g in range(20)
    ]
    exs = en + zh
    for seed in range(20):
        _, evals, _ = split_indices(exs, eval_fraction=0.25, seed=seed)
        held = [exs[i].id[:2] for i in evals]
        assert held.count("en") == 10 and held.count("zh") == 5, (seed, held)
