"""`ragtune eval` with a scripted generator: scores, outputs, and resumption after a crash."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from ragtune import runs
from ragtune.errors import RagtuneError
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
        latency_questions=0,  # the call counts below are the eval's alone
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
        "eval_run.json",  # the eval's identity; the lock is gone
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


def test_another_eval_in_the_folder_stops_unless_overwrite(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        evaluate.run(_cfg(tmp_path), Scripted(crash_after=1))
    cfg = _cfg(tmp_path)
    cfg.gen.max_new_tokens = 7  # another eval: the 4 saved answers are not its own
    with pytest.raises(RagtuneError, match=r"holds another eval run, which differs in gen"):
        evaluate.run(cfg, Scripted())
    cfg.overwrite = True
    second = Scripted()
    evaluate.run(cfg, second)
    assert sum(second.calls) == 7  # nothing of the other eval was reused


def test_a_folder_in_use_is_refused_and_a_dead_holder_is_cleared(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "stage": "eval", "since": 0}
        (out / runs.LOCK_FILE).write_text(json.dumps(lock))
        with pytest.raises(
            RagtuneError, match=rf"in use by ragtune eval \(PID {holder.pid}.*delete"
        ):
            evaluate.run(_cfg(tmp_path), Scripted())
    finally:
        holder.kill()
        holder.wait()
    assert evaluate.run(_cfg(tmp_path), Scripted())["n"] == 7  # its holder is gone: cleared
    assert not (out / runs.LOCK_FILE).exists()


def test_eval_never_writes_over_its_data(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    (tmp_path / "out").mkdir()
    data = tmp_path / "out" / "predictions.jsonl"
    write_jsonl(data, EXAMPLES)
    before = data.read_bytes()
    cfg.data = str(data)
    with pytest.raises(RagtuneError, match="would overwrite the input data="):
        evaluate.run(cfg, Scripted())
    assert data.read_bytes() == before


def test_over_long_prompt_is_shortened_like_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A 200k-character passage is cut to fit max_length (the question kept whole), and the
    metrics say so; before, such a prompt made no progress for minutes."""
    from ragtune.generation.local import LocalGenerator
    from ragtune.models import load_model

    long = Example(
        "long", "Where is tower 1?", ["Tower 1 is in Paris. " + "filler words " * 16000], ["Paris"]
    )
    write_jsonl(tmp_path / "eval.jsonl", [long, EXAMPLES[0]])
    gen = LocalGenerator(*load_model(str(tiny_model_dir)), max_new_tokens=4, batch_size=2, name="t")
    seen: list[int] = []
    plain = gen.generate

    def measured(batch: list) -> list:
        seen.extend(gen.count_prompt_tokens(m) for m in batch)
        return plain(batch)

    gen.generate = measured  # type: ignore[method-assign]
    cfg = EvalConfig(
        data=str(tmp_path / "eval.jsonl"),
        out=str(tmp_path / "out"),
        semantic=False,
        max_length=256,
        gen=GenerateConfig(model=str(tiny_model_dir), max_new_tokens=4),
    )
    m = evaluate.run(cfg, gen)
    assert m["shortened_prompts"] == 1 and any("shortened" in n for n in m["notes"])
    from ragtune.prompt.grounded import PromptConfig, build_messages

    whole = gen.count_prompt_tokens(
        build_messages(EXAMPLES[0].question, EXAMPLES[0].contexts, PromptConfig())
    )
    assert max(seen) <= 256 - 4 and min(seen) == whole  # the long one fits; the short one is whole
    rows = [
        json.loads(x) for x in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    ]
    assert rows[0]["question"] == long.question


def test_duplicate_id_is_named(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "eval.jsonl", [EXAMPLES[0], EXAMPLES[0]])
    cfg = EvalConfig(data=str(tmp_path / "eval.jsonl"), out=str(tmp_path / "out"))
    with pytest.raises(ValueError, match='id "q0" occurs more than once'):
        evaluate.run(cfg, Scripted())


def test_a_finished_eval_is_reused_and_how_it_runs_may_change(tmp_path: Path) -> None:
    first = evaluate.run(_cfg(tmp_path), Scripted())
    cfg = _cfg(tmp_path)
    cfg.gen.timeout_s, cfg.semantic, cfg.label = 5.0, False, "renamed"  # how, not what
    again = Scripted()
    assert evaluate.run(cfg, again) == first and again.calls == []


def test_max_length_without_room_for_passages_is_an_error(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from ragtune.generation.local import LocalGenerator
    from ragtune.models import load_model

    gen = LocalGenerator(*load_model(str(tiny_model_dir)), max_new_tokens=4, batch_size=2, name="t")
    cfg = _cfg(tmp_path)
    cfg.max_length = 40  # less than the instruction and question alone
    with pytest.raises(RagtuneError, match="max_length: 40 tokens leave no room for any passage"):
        evaluate.run(cfg, gen)


def test_single_request_latency_is_measured_at_batch_one(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg.gen.batch_size = 4
    cfg.latency_questions = 3
    gen = Scripted()
    m = evaluate.run(cfg, gen)
    assert gen.calls == [7, 1, 1, 1]  # the eval in one call of 7, then 3 single requests
    assert m["latency_questions"] == 3 and m["latency_s_p50"] is not None
    assert m["answer_s_mean"] == pytest.approx(0.5 / 7)  # the call's 0.5 s over its 7 answers
