"""Side-by-side comparison: values, deltas vs the first run, output files, error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragtune.config import ConfigError, load_config
from ragtune.eval.compare import CompareConfig, CompareError, format_table, run, run_label

BASE = {
    "n": 10,
    "exact_match": 40.0,
    "f1": 50.0,
    "hallucination_rate": 20.0,
    "semantic_similarity": 0.71,
    "latency_s_p50": 0.5,
    "by_kind": {"counterfactual": {"n": 2, "exact_match": 0.0, "f1": 10.0}},
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
}
TUNED = {
    "n": 10,
    "exact_match": 55.5,
    "f1": 62.0,
    "hallucination_rate": 5.0,
    "semantic_similarity": 0.8,
    "latency_s_p50": 0.75,
    "by_kind": {"counterfactual": {"n": 2, "exact_match": 50.0, "f1": 60.0}},
    "model": "Qwen/Qwen2.5-0.5B-Instruct",
    "adapter": "runs/train/adapter",
}


def runs(tmp_path: Path) -> list[str]:
    folders = []
    for name, metrics in (("base", BASE), ("tuned", TUNED)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        folders.append(str(folder))
    return folders


def test_values_and_deltas(tmp_path: Path) -> None:
    result = run(CompareConfig(runs=runs(tmp_path)))
    assert result["labels"] == ["Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B-Instruct + adapter"]
    by_key = {r["key"]: r for r in result["rows"]}
    assert by_key["f1"]["values"] == [50.0, 62.0]
    assert by_key["f1"]["deltas"] == [None, 12.0]
    assert by_key["exact_match"]["deltas"][1] == pytest.approx(15.5)
    assert by_key["hallucination_rate"]["deltas"][1] == pytest.approx(-15.0)
    assert by_key["by_kind.counterfactual.f1"]["deltas"] == [None, 50.0]
    assert "refusal_accuracy" not in by_key  # absent from every run: no empty row
    table = format_table(result)
    f1_line = next(line for line in table.splitlines() if line.startswith("Token F1 "))
    assert f1_line.split()[-3:] == ["62.0%", "+12.0", "pp"]
    assert "-15.0 pp" in table and "+0.090" in table and "+0.250 s" in table


def test_files_written_with_chart_and_direction(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    run(CompareConfig(runs=runs(tmp_path), out=str(out), labels=["base", "tuned <v2>"]))
    assert sorted(p.name for p in out.iterdir()) == ["compare.html", "compare.json", "compare.md"]
    page = (out / "compare.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 1 and "http" not in page
    assert "tuned &lt;v2&gt;" in page and "tuned <v2>" not in page
    # fewer hallucinations is an improvement (green); a slower p50 is a regression (red)
    assert '<td class="num up">-15.0 pp</td>' in page
    assert '<td class="num down">+0.250 s</td>' in page
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert "| Token F1 | 50.0% | 62.0% | +12.0 pp |" in md
    assert json.loads((out / "compare.json").read_text())["labels"] == ["base", "tuned <v2>"]


def test_missing_metrics_names_the_folder(tmp_path: Path) -> None:
    folders = runs(tmp_path)
    empty = tmp_path / "not_evaluated"
    empty.mkdir()
    with pytest.raises(CompareError, match="not_evaluated: no metrics.json"):
        run(CompareConfig(runs=[folders[0], str(empty)]))


def test_config_from_overrides_and_label_count_check(tmp_path: Path) -> None:
    a, b = runs(tmp_path)
    cfg = load_config(CompareConfig, None, [f"runs=[{a},{b}]", "labels=[x,y]"])
    assert cfg.runs == [a, b] and cfg.out is None
    with pytest.raises(ConfigError, match="labels: 1 names for 2 runs"):
        load_config(CompareConfig, None, [f"runs=[{a},{b}]", "labels=[x]"])


def test_label_from_top_level_keys_or_folder(tmp_path: Path) -> None:
    # `ragtune eval` writes label/model/adapter at the top level of metrics.json
    assert run_label("runs/x", {"label": "tuned", "model": "m"}) == "tuned"
    assert run_label("runs/x", {"model": "org/m", "adapter": "runs/a/adapter"}) == "m + adapter"
    assert run_label(str(tmp_path / "base_run"), {"f1": 1.0}) == "base_run"


def test_fewer_generated_tokens_per_second_is_not_a_regression(tmp_path: Path) -> None:
    """A tuned model that answers in 3 tokens decodes fewer tokens per batch: shown, not red.
    Time per answer is what speed is judged by."""
    from ragtune.eval.compare import _better

    assert _better("generated_tokens_per_s", -30.0) == 0
    assert _better("answer_s_mean", -0.5) == 1 and _better("answer_s_mean", 0.5) == -1
