"""The LLM judge: strict verdict parsing, retries, and failures counted, against a real
OpenAI-compatible server on loopback (`ragtune serve`), never a mocked function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.eval import stage as evaluate
from ragtune.eval.judge import SYSTEM, VerdictError, parse
from ragtune.eval.stage import EvalConfig
from ragtune.generation.load import GenerateConfig
from tests.serve.conftest import scripted_pool

GOOD = '{"faithfulness": 5, "correctness": 4, "style": 3, "reason": "short and supported"}'


def test_parse_takes_the_json_verdict_and_refuses_anything_else() -> None:
    assert parse(GOOD)["correctness"] == 4
    assert parse("```json\n" + GOOD + "\n```")["style"] == 3  # a fence around it is fine
    for bad, why in [
        ("The answer is good.", "no JSON"),
        ('{"faithfulness": 5, "correctness": 4}', '"style"'),
        ('{"faithfulness": 6, "correctness": 4, "style": 3}', "1-5"),
        ('{"faithfulness": "5", "correctness": 4, "style": 3}', "integer"),
        ('{"faithfulness": 5, "correctness": 4, "style": 3', "no JSON"),
    ]:
        with pytest.raises(VerdictError, match=why):
            parse(bad)
    assert not any(
        ch.isdigit() for ch in SYSTEM.replace("1 (worst) to 5 (best)", "")
    )  # no numeric example


def qa_file(tmp_path: Path) -> Path:
    p = tmp_path / "qa.jsonl"
    rows = [
        {
            "id": "1",
            "question": "Where is the tower?",
            "context": "The tower is in Paris.",
            "answer": "Paris",
        },
        {"id": "2", "question": "Who built it?", "context": "The tower is in Paris.", "answer": ""},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def test_eval_with_a_judge_behind_a_real_server(
    start_server, tmp_path: Path, tiny_model_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    replies = iter(["no verdict here", GOOD, GOOD, GOOD])  # the first reply fails once: retried
    url, _ = start_server(scripted_pool(lambda m: next(replies)))
    gen = GenerateConfig(model=str(tiny_model_dir), max_new_tokens=4)
    m = evaluate.run(EvalConfig(data=str(qa_file(tmp_path)), out=str(tmp_path / "e"), gen=gen, semantic=False,
                                latency_questions=0, judge="openai:base", judge_api_base=url + "/v1"))  # fmt: skip
    assert m["judge_scored"] == 2 and m["judge_failures"] == 0
    assert (m["judge_faithfulness"], m["judge_correctness"], m["judge_style"]) == (5.0, 4.0, 3.0)
    assert "Judge: faithfulness" in (tmp_path / "e" / "report.md").read_text()


def test_judge_failures_are_counted_not_dropped(
    start_server, tmp_path: Path, tiny_model_dir: Path, tiny_pool
) -> None:  # type: ignore[no-untyped-def]
    url, _ = start_server(tiny_pool)  # a tiny random model: it never writes a verdict
    gen = GenerateConfig(model=str(tiny_model_dir), max_new_tokens=4)
    m = evaluate.run(EvalConfig(data=str(qa_file(tmp_path)), out=str(tmp_path / "e"), gen=gen, semantic=False,
                                latency_questions=0, judge=f"openai:{tiny_pool.base_name}",
                                judge_api_base=url + "/v1", judge_retries=1))  # fmt: skip
    assert m["judge_failures"] == 2 and m["judge_scored"] == 0 and m["judge_faithfulness"] is None
    assert any("not valid verdicts" in n for n in m["notes"])
    preds = [
        json.loads(line) for line in (tmp_path / "e" / "predictions.jsonl").read_text().splitlines()
    ]
    assert all(p["judge"] is None for p in preds)


def test_judge_max_judges_only_the_first_answers(
    start_server, tmp_path: Path, tiny_model_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    asked: list[object] = []
    url, _ = start_server(scripted_pool(lambda m: asked.append(m) or GOOD))
    gen = GenerateConfig(model=str(tiny_model_dir), max_new_tokens=4)
    m = evaluate.run(EvalConfig(data=str(qa_file(tmp_path)), out=str(tmp_path / "e"), gen=gen, semantic=False,
                                latency_questions=0, judge="openai:base", judge_api_base=url + "/v1",
                                judge_max=1))  # fmt: skip
    assert len(asked) == 1 and m["judge_scored"] == 1 and m["judge_failures"] == 0
    preds = [
        json.loads(line) for line in (tmp_path / "e" / "predictions.jsonl").read_text().splitlines()
    ]
    assert preds[0]["judge"]["correctness"] == 4 and preds[1]["judge"] is None


def test_refusals_are_scored_by_rule_and_the_rest_by_the_judge(start_server) -> None:  # type: ignore[no-untyped-def]
    from ragtune.eval.judge import judge_rows
    from ragtune.generation.load import load_generator

    asked: list[object] = []
    url, _ = start_server(scripted_pool(lambda m: asked.append(m) or GOOD))
    judge = load_generator(GenerateConfig(model="openai:base", api_base=url + "/v1"))
    refusal = "The context does not contain the answer."
    rows = [
        {"question": "Where?", "answers": ["Paris"], "answerable": True, "prediction": refusal, "refused": True},
        {"question": "Who?", "answers": [], "answerable": False, "prediction": refusal, "refused": True},
        {"question": "Where?", "answers": ["Paris"], "answerable": True, "prediction": "Paris", "refused": False},
    ]  # fmt: skip
    summary, verdicts = judge_rows(judge, rows, [["The tower is in Paris."]] * 3)
    assert len(asked) == 1  # only the answer that is not a refusal went to the judge
    assert [v["correctness"] for v in verdicts if v] == [1, 5, 4]
    assert summary["judge_by_rule"] == 2 and summary["judge_scored"] == 3
    assert summary["judge_failures"] == 0
