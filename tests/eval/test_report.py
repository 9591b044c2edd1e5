"""The report files: both written, HTML self-contained, values shown, model text escaped."""

from __future__ import annotations

import re
from pathlib import Path

from ragtune.eval.metrics import evaluate
from ragtune.eval.report import format_metric, pick_samples, write_report
from ragtune.example import Example
from ragtune.generation.base import Generation

EVIL = "<script>alert('x')</script> & co"


def build(tmp_path: Path) -> tuple[dict, list[dict], Path]:
    examples = [
        Example("a", "Capital of France?", ["The capital of France is Paris."], ["Paris"]),
        Example("b", "Who won?", ["Marie Curie won in 1903."], ["Marie Curie"]),
        Example("c", "Who is the mayor?", ["Paris is in France."], [], answerable=False),
        Example("d", "中国的首都是哪里？", ["中国的首都是北京。"], ["北京"], kind="counterfactual"),
    ]
    predictions = ["Paris", EVIL, "The context does not contain the answer.", "北京"]
    timings = [
        Generation("", 3, 2.0, 2),
        Generation("", 9, 2.0, 2),
        Generation("", 8, 1.0, 2),
        Generation("", 4, 1.0, 2),
    ]
    metrics, rows = evaluate(examples, predictions, timings, semantic=False)
    out = tmp_path / "run"
    meta = {"model": "tiny <model>", "adapter": None}
    write_report(out, metrics, rows, title="Tiny & <base> eval", meta=meta)
    return metrics, rows, out


def test_report_files_and_values(tmp_path: Path) -> None:
    metrics, _, out = build(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]  # no temp files
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    # EM: a, c, d right of 4 = 75%; b's prediction has no token in common with "Marie Curie"
    assert metrics["exact_match"] == 75.0 and format_metric("exact_match", 75.0) == "75.0%"
    # hallucination: b only, none of its tokens [scriptalertxscript, co] is in its context
    assert metrics["hallucination_rate"] == 25.0
    # generated tokens/s: 24 tokens over 2 + 1 s of wall time (no prompt time measured)
    assert format_metric("generated_tokens_per_s", metrics["generated_tokens_per_s"]) == "8.0 tok/s"
    # time per answer: 1.0, 1.0, 0.5, 0.5 s (each call's wall time over its 2 answers)
    assert metrics["answer_s_mean"] == 0.75
    for text in (md, page):
        assert "75.0%" in text and "25.0%" in text and "8.0 tok/s" in text
        assert "0.750 s" in text and "Time per answer" in text
        assert "counterfactual" in text and "中国的首都是哪里？" in text
        assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Tiny &amp; &lt;base&gt; eval" in page and "tiny &lt;model&gt;" in page


def test_html_is_self_contained(tmp_path: Path) -> None:
    _, _, out = build(tmp_path)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "<style>" in page
    # main chart, by-kind and by-language charts, latency histogram: all embedded PNGs
    assert page.count('src="data:image/png;base64,') == 4


def test_worst_predictions_come_first_and_are_highlighted(tmp_path: Path) -> None:
    _, rows, out = build(tmp_path)
    shown, n_worst = pick_samples(rows)
    assert n_worst == 1 and shown[0]["id"] == "b"  # the only hallucination
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<tr class="worst">') == 1
    worst_row = page.split('<tr class="worst">', 1)[1].split("</tr>", 1)[0]
    assert "&lt;script&gt;" in worst_row


def test_scored_refusals_get_the_tradeoff_section(tmp_path: Path) -> None:
    from ragtune.eval.calibrate import score_auc, sweep

    examples = [
        Example("a", "Capital of France?", ["The capital of France is Paris."], ["Paris"]),
        Example("c", "Who is the mayor?", ["Paris is in France."], [], answerable=False),
    ]
    refusal = "The context does not contain the answer."
    gens = [
        Generation("Paris", 1, 1.0, 2, refusal_score=0.2, unrefused="Paris"),
        Generation(refusal, 8, 1.0, 2, refusal_score=0.9, unrefused="Lyon"),
    ]
    metrics, rows = evaluate(examples, [g.text for g in gens], gens, semantic=False)
    assert rows[1]["unrefused"] == "Lyon" and rows[1]["refusal_score"] == 0.9
    metrics["refusal_tradeoff"] = sweep(rows)
    metrics["refusal_threshold"] = 0.5
    metrics["refusal_score_auc"] = score_auc(rows)
    assert metrics["refusal_score_auc"] == 100.0  # the unanswerable one scores higher
    # t=0.5 answers a (F1 1) and refuses c (1): 100; t=1 answers both: 50
    f1 = {p["threshold"]: p["f1"] for p in metrics["refusal_tradeoff"]}
    assert f1[0.2] == 100.0 and f1[1.0] == 50.0 and f1[0.0] == 50.0
    write_report(tmp_path, metrics, rows, title="t", meta={})
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "## Refusal threshold trade-off" in md and "t = 0.5" in md
    assert "one 100.0% of the time (refusal score AUC" in md
    assert 'alt="refusal trade-off"' in page
