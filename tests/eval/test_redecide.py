"""benchmarks/redecide.py: finished evals decided again at a new calibration, from their saved
answers, generating nothing."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from ragtune.eval import stage as evaluate
from ragtune.example import Example, write_jsonl
from ragtune.generation import abstain
from ragtune.generation.load import GenerateConfig
from ragtune.generation.local import LocalGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import redecide  # noqa: E402  (a script's module, beside the benchmarks it serves)


def test_redecide_applies_the_new_threshold_to_the_saved_answers(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter_dir, run)
    rows = [
        Example(f"q{i}", f"Where is tower {i}?", [f"Tower {i} is in Paris."], ["Paris"])
        for i in range(5)
    ]
    write_jsonl(tmp_path / "eval.jsonl", rows)
    first = tmp_path / "ev"
    cfg = evaluate.EvalConfig(
        data=str(tmp_path / "eval.jsonl"),
        out=str(first),
        gen=GenerateConfig(
            model=str(tiny_model_dir), adapter=str(run), max_new_tokens=4, refusal_threshold=1.0
        ),  # fmt: skip
        latency_questions=0,
        semantic=False,
    )
    before = evaluate.run(cfg)
    assert before["false_refusal_rate"] == 0.0  # 1.0 refuses nothing
    abstain.calibration_path(run).write_text(json.dumps({"threshold": 0.0}))  # refuse all

    # an eval without scores, to show it cannot be decided again
    greedy = tmp_path / "greedy"
    evaluate.run(
        evaluate.EvalConfig(
            data=cfg.data,
            out=str(greedy),
            semantic=False,
            latency_questions=0,
            gen=GenerateConfig(
                model=str(tiny_model_dir), max_new_tokens=4, refusal_threshold="none"
            ),
        )
    )

    def no_generation(*a: object, **k: object) -> None:
        raise AssertionError("redecide generated an answer")

    monkeypatch.setattr(LocalGenerator, "generate", no_generation)
    monkeypatch.setattr(sys, "argv", ["redecide.py", str(first), "--suffix", "t0"])
    redecide.main()
    after = json.loads((tmp_path / "ev-t0" / "metrics.json").read_text())
    assert after["refusal_threshold"] == 0.0 and after["false_refusal_rate"] == 100.0
    old = [json.loads(line) for line in (first / "predictions.jsonl").open()]
    new = [json.loads(line) for line in (tmp_path / "ev-t0" / "predictions.jsonl").open()]
    assert [r["unrefused"] for r in new] == [r["unrefused"] for r in old]
    assert [r["refusal_score"] for r in new] == [r["refusal_score"] for r in old]
    assert all(r["refused"] for r in new)
    monkeypatch.setattr(sys, "argv", ["redecide.py", str(greedy), "--suffix", "x"])
    with pytest.raises(SystemExit, match="no refusal score"):
        redecide.main()
    # --threshold keep: any eval scored again at its own setting, under today's metrics
    monkeypatch.setattr(
        sys, "argv", ["redecide.py", str(greedy), "--suffix", "again", "--threshold", "keep"]
    )
    redecide.main()
    was = json.loads((greedy / "metrics.json").read_text())
    now = json.loads((tmp_path / "greedy-again" / "metrics.json").read_text())
    for key in ("f1", "answerable_f1", "answer_in_context_rate", "hallucination_rate"):
        assert now[key] == was[key], key
    greedy_rows = [json.loads(line) for line in (greedy / "predictions.jsonl").open()]
    again = [json.loads(line) for line in (tmp_path / "greedy-again" / "predictions.jsonl").open()]
    assert [r["prediction"] for r in again] == [r["prediction"] for r in greedy_rows]
    # an eval decided at the run's calibration (auto), calibrated again since, cannot keep it
    abstain.calibration_path(run).write_text(json.dumps({"threshold": 0.5}))
    monkeypatch.setattr(
        sys,
        "argv",
        ["redecide.py", str(tmp_path / "ev-t0"), "--suffix", "k", "--threshold", "keep"],
    )
    with pytest.raises(SystemExit, match="another calibration"):
        redecide.main()


def test_redecide_at_a_number_and_refuses_stale_folders(
    tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_adapter_dir, run)
    rows = [Example(f"q{i}", f"Where is tower {i}?", [f"Tower {i} is in Paris."], ["Paris"])
            for i in range(3)]  # fmt: skip
    write_jsonl(tmp_path / "eval.jsonl", rows)
    first = tmp_path / "ev"
    evaluate.run(
        evaluate.EvalConfig(
            data=str(tmp_path / "eval.jsonl"), out=str(first), latency_questions=0, semantic=False,
            gen=GenerateConfig(model=str(tiny_model_dir), adapter=str(run), max_new_tokens=4,
                               refusal_threshold=1.0),
        )
    )  # fmt: skip
    monkeypatch.setattr(
        sys, "argv", ["redecide.py", str(first), "--suffix", "n", "--threshold", "0"]
    )
    redecide.main()
    at_zero = json.loads((tmp_path / "ev-n" / "metrics.json").read_text())
    assert at_zero["refusal_threshold"] == 0.0 and at_zero["false_refusal_rate"] == 100.0
    redecide.main()  # the same thresholds again: the folder is reused
    monkeypatch.setattr(
        sys, "argv", ["redecide.py", str(first), "--suffix", "n", "--threshold", "1"]
    )
    with pytest.raises(SystemExit, match="other thresholds"):
        redecide.main()
    # the eval's questions changed since: its answers are not this data's, whatever the mode
    write_jsonl(tmp_path / "eval.jsonl", rows[:2])
    for mode in ("keep", "0.5"):
        monkeypatch.setattr(
            sys, "argv", ["redecide.py", str(first), "--suffix", f"d{mode}", "--threshold", mode]
        )
        with pytest.raises(SystemExit, match="differs in the content of data"):
            redecide.main()
