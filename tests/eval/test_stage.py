"""`ragtune eval` with a scripted generator: scores, outputs, and resumption after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune import runs
from ragtune.eval import stage as evaluate
from ragtune.eval.stage import EvalConfig
from ragtune.example import Example, write_jsonl
from ragtune.generation.base import Generation
from ragtune.generation.load import GenerateConfig

EXAMPLES = [
    Example(
        id=f"q{i}",
        question=f"Where is tower {i}?",
        contexts=[f"Tower {i} is in Paris."],
        answers=["Paris"],
    )
    for i in range(6)
] + [
    Example(
        id="u",
        question="Who is the mayor?",
        contexts=["Tower 9 is in Rome."],
        answers=[],
        answerable=False,
    )
]


class Scripted:
    """Answers "Paris" to everything; can be told to crash after some calls."""

    name = "scripted"

    def __init__(self, crash_after: int | None = None):
        self.calls: list[int] = []
        self.crash_after = crash_after

    def generate(self, batch: list[list[dict[str, str]]]) -> list[Generation]:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("killed")
        self.calls.append(len(batch))
        return [Generation("Paris", 1, 0.5, len(batch)) for _ in batch]


def _cfg(tmp_path: Path) -> EvalConfig:
    write_jsonl(tmp_path / "eval.jsonl", EXAMPLES)
    # batch_size 1 -> chunks of 4 questions are saved as they finish
    return EvalConfig(
        data=str(tmp_path / "eval.jsonl"),
        out=str(tmp_path / "out"),
        semantic=False,
        gen=GenerateConfig(model="scripted", batch_size=1),
    )


def test_scores_and_outputs(tmp_path: Path) -> None:
    assert runs.finished(tmp_path / "out") is None
    m = evaluate.run(_cfg(tmp_path), Scripted())
    assert m["n"] == 7 and m["answerable_f1"] == 100.0
    assert runs.finished(tmp_path / "out") == m  # what a pipeline reuses instead of re-running
    assert m["refusal_accuracy"] == 0.0 and m["hallucination_rate"] == pytest.approx(100 / 7)
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {
        "predictions.jsonl",
        "metrics.json",
        "report.md",
        "report.html",
        "eval_config.yaml",
    }


def test_killed_eval_resumes_without_redoing_answers(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(_cfg(tmp_path), Scripted(crash_after=1))
    partial = tmp_path / "out" / "predictions.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 4
    second = Scripted()
    m = evaluate.run(_cfg(tmp_path), second)
    assert sum(second.calls) == 3  # only the 3 unanswered questions
    assert m["n"] == 7
    rows = [
        json.loads(line)
        for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    ]
    assert [r["id"] for r in rows] == [e.id for e in EXAMPLES]


def test_partial_answers_from_another_config_are_not_reused(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(_cfg(tmp_path), Scripted(crash_after=1))
    cfg = _cfg(tmp_path)
    cfg.gen.adapter = "runs/other-adapter"  # a different model: the 4 saved answers are stale
    second = Scripted()
    evaluate.run(cfg, second)
    assert sum(second.calls) == 7


def test_duplicate_id_is_named(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "eval.jsonl", [EXAMPLES[0], EXAMPLES[0]])
    cfg = EvalConfig(data=str(tmp_path / "eval.jsonl"), out=str(tmp_path / "out"))
    with pytest.raises(ValueError, match='id "q0" occurs more than once'):
        evaluate.run(cfg, Scripted())
