"""Calibration: the threshold that maximises overall F1 (or meets a false-refusal target) on
held-out data, written with the adapter and used by eval by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ragtune import runtime
from ragtune.cli import main
from ragtune.eval import calibrate
from ragtune.eval import stage as evaluate
from ragtune.example import Example, write_jsonl
from ragtune.generation import abstain
from ragtune.generation.load import GenerateConfig
from ragtune.runs import RunError
from ragtune.train import stage as train

# answerable, refusal score, F1 of the answer given when not refused
TABLE = [
    ("a", True, 0.1, 1.0),
    ("b", True, 0.6, 0.5),
    ("c", False, 0.7, 0.0),
    ("d", False, 0.4, 0.0),
    ("e", True, 0.8, 1.0),
]
ROWS = [
    {"id": i, "answerable": a, "refusal_score": s, "unrefused_f1": f, "unrefused_refused": False}
    for i, a, s, f in TABLE
]


def test_sweep_scores_every_threshold_by_hand() -> None:
    points = {p["threshold"]: p for p in calibrate.sweep(ROWS)}
    assert sorted(points) == [0.0, 0.1, 0.4, 0.6, 0.7, 0.8, 1.0]
    # t=0.1: a answered (F1 1), b..e refused: c and d right (1 each), b and e wrong
    assert points[0.1]["f1"] == pytest.approx(60.0)
    assert points[0.1]["refusal_accuracy"] == 100.0
    assert points[0.1]["false_refusal_rate"] == pytest.approx(200 / 3)
    assert points[0.0]["f1"] == pytest.approx(40.0) and points[0.0]["answered"] == 0.0
    assert points[0.6]["f1"] == pytest.approx(50.0)  # a 1 + b 0.5 + c refused 1
    assert points[1.0]["answered"] == 100.0 and points[1.0]["f1"] == pytest.approx(50.0)


def test_score_auc_counts_pairs_by_hand() -> None:
    # unanswerable c (0.7) outranks a (0.1) and b (0.6); d (0.4) only a: 3 of 6 pairs
    assert calibrate.score_auc(ROWS) == pytest.approx(50.0)
    tie = [
        {"answerable": False, "refusal_score": 0.5},
        {"answerable": True, "refusal_score": 0.5},
        {"answerable": True, "refusal_score": 0.2},
    ]
    assert calibrate.score_auc(tie) == pytest.approx(75.0)  # a tie counts half
    assert calibrate.score_auc([r for r in ROWS if r["answerable"]]) is None


def test_score_auc_matches_every_pair_compared() -> None:
    import random

    rng = random.Random(3)
    rows = [
        {"answerable": rng.random() < 0.5, "refusal_score": rng.choice([0.1, 0.2, 0.3, 0.9])}
        for _ in range(60)
    ]
    pos = [r["refusal_score"] for r in rows if not r["answerable"]]
    neg = [r["refusal_score"] for r in rows if r["answerable"]]
    pairs = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    assert calibrate.score_auc(rows) == pytest.approx(100 * pairs / (len(pos) * len(neg)))


def test_score_auc_is_taken_within_each_language() -> None:
    # zh separates perfectly, en is inverted; pooled, the two hide each other
    rows = [
        {"lang": "zh", "answerable": False, "refusal_score": 0.9},
        {"lang": "zh", "answerable": True, "refusal_score": 0.5},
        {"lang": "en", "answerable": False, "refusal_score": 0.2},
        {"lang": "en", "answerable": True, "refusal_score": 0.3},
        {"lang": "en", "answerable": True, "refusal_score": 0.1},
    ]
    assert calibrate.score_auc_by_lang(rows) == {"en": 50.0, "zh": 100.0}
    assert calibrate.score_auc(rows) == pytest.approx(100 * 4 / 6)  # 0.9 beats 3, 0.2 beats 1
    one_kind = [r for r in rows if r["lang"] == "zh" and r["answerable"]]
    assert calibrate.score_auc_by_lang(one_kind) == {"zh": None}


def test_per_language_thresholds_by_hand() -> None:
    """Chinese scores separate perfectly; English ones are inverted, so English is best
    refusing nothing. French has no unanswerable row: it keeps the pooled threshold. Each
    row of the table stands for 5 questions (MIN_PER_LANGUAGE of each kind per language)."""
    table = [
        ("zh", True, 0.2, 1.0), ("zh", True, 0.3, 1.0),
        ("zh", False, 0.8, 0.0), ("zh", False, 0.9, 0.0),
        ("en", True, 0.7, 1.0), ("en", True, 0.6, 1.0),
        ("en", False, 0.1, 0.0), ("en", False, 0.2, 0.0),
    ]  # fmt: skip
    assert calibrate.MIN_PER_LANGUAGE == 10
    rows = [
        {"id": f"{lang}{i}-{k}", "lang": lang, "answerable": a, "refusal_score": sc,
         "unrefused_f1": f, "unrefused_refused": False}
        for i, (lang, a, sc, f) in enumerate(table) for k in range(5)
    ] + [{"id": "fr", "lang": "fr", "answerable": True, "refusal_score": 0.95,
          "unrefused_f1": 1.0, "unrefused_refused": False}]  # fmt: skip
    chosen = calibrate.choose_by_lang(rows)
    assert set(chosen) == {"zh", "en"}
    # zh: refusing above 0.3 refuses exactly the unanswerable ones (above 0.8 misses half)
    assert chosen["zh"]["threshold"] == 0.3 and chosen["zh"]["f1"] == 100.0
    # en: refusing at all refuses answerable ones first; refusing nothing scores half
    assert chosen["en"]["threshold"] == 1.0 and chosen["en"]["f1"] == 50.0
    applied = abstain.Threshold.of(0.5, {k: p["threshold"] for k, p in chosen.items()})
    # zh 20 right, en 10 of 20, fr (at the pooled 0.5, 0.95 refuses its answerable row) 0
    assert calibrate.point(rows, applied)["f1"] == pytest.approx(100 * 30 / 41)
    assert calibrate.point(rows, applied)["false_refusal_rate"] == pytest.approx(100 / 21)
    assert calibrate.choose_by_lang([r for r in rows if r["lang"] == "zh"]) == {}  # one language
    # 9 unanswerable English questions: too few for a threshold of its own
    fewer = [r for r in rows if not (r["lang"] == "en" and r["id"] == "en6-0")]
    assert set(calibrate.choose_by_lang(fewer)) == {"zh"}


def test_a_mix_that_breaks_the_false_refusal_cap_falls_back_to_pooled() -> None:
    """Chinese has no unanswerable question, so it keeps the pooled threshold (0.7), which
    meets a 10% cap over all 20 answerable questions; English's own (0.5) meets it within
    English, but the two together refuse 3 of 20 answerable: no language gets its own."""
    table = {
        ("en", True): [0.1] * 5 + [0.3] * 2 + [0.5] * 2 + [0.7],
        ("en", False): [0.1] * 2 + [0.3, 0.5] + [0.7] * 2 + [0.9] * 4,
        ("zh", True): [0.1] * 4 + [0.3] * 2 + [0.5, 0.7] + [0.9] * 2,
    }
    rows = [
        {"id": f"{lang}{a}{i}", "lang": lang, "answerable": a, "refusal_score": sc,
         "unrefused_f1": float(a), "unrefused_refused": False}
        for (lang, a), scores in table.items() for i, sc in enumerate(scores)
    ]  # fmt: skip
    capped = calibrate.CalibrateSection(max_false_refusal=0.1)
    points = calibrate.sweep(rows)
    assert calibrate.choose(points, 0.1)["threshold"] == 0.7
    assert {k: p["threshold"] for k, p in calibrate.choose_by_lang(rows, 0.1).items()} == {
        "en": 0.5
    }
    mixed = calibrate.point(rows, abstain.Threshold.of(0.7, {"en": 0.5}))
    assert mixed["false_refusal_rate"] == pytest.approx(15.0)
    best, by_lang = calibrate.choose_thresholds(rows, points, capped)
    assert by_lang == {} and best == calibrate.choose(points, 0.1)
    # without the cap the mix is kept: its F1 is at least the pooled one's
    best, by_lang = calibrate.choose_thresholds(rows, points, calibrate.CalibrateSection())
    assert set(by_lang) == {"en"} and best["f1"] >= calibrate.choose(points)["f1"]


def test_a_language_with_too_few_questions_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """Chinese has 12 of each kind and gets its own threshold; English has 8 unanswerable
    held-out questions (one SQuAD article's worth), so it falls back to the pooled one, and
    the summary says so, with the counts and how to calibrate on more."""
    rows = [
        {"id": f"{lang}{a}{i}", "lang": lang, "answerable": a, "refusal_score": (i % 7) / 7,
         "unrefused_f1": float(a), "unrefused_refused": False}
        for lang, n_ans, n_unans in (("zh", 12, 12), ("en", 30, 8))
        for a, n in ((True, n_ans), (False, n_unans)) for i in range(n)
    ]  # fmt: skip
    record = calibrate.record_from_rows(rows, calibrate.CalibrateSection(), None)
    assert set(record["chosen_by_lang"]) == {"zh"}
    assert calibrate.pooled_languages(record) == {"en": (30, 8)}
    calibrate.show(record)
    out = capsys.readouterr().out
    assert "en has 8 unanswerable and 30 answerable" in out and "data=FILE" in out
    # Enough English questions: nothing to say.
    more = rows + [{**r, "id": r["id"] + "x"} for r in rows if r["lang"] == "en"]
    assert (
        calibrate.pooled_languages(
            calibrate.record_from_rows(more, calibrate.CalibrateSection(), None)
        )
        == {}
    )
    # One language, or per-language thresholds turned off: nothing to say either.
    english = [r for r in rows if r["lang"] == "en"]
    assert (
        calibrate.pooled_languages(
            calibrate.record_from_rows(english, calibrate.CalibrateSection(), None)
        )
        == {}
    )
    pooled = calibrate.CalibrateSection(per_language=False)
    assert calibrate.pooled_languages(calibrate.record_from_rows(rows, pooled, None)) == {}


def test_wilson_interval_by_hand() -> None:
    # 5 of 10: centre 0.5, half-width 1.96 * sqrt(0.025 + 0.0096) / 1.384 = 0.263
    lo, hi = calibrate.wilson(50.0, 10)
    assert lo == pytest.approx(23.66, abs=0.01) and hi == pytest.approx(76.34, abs=0.01)
    lo, hi = calibrate.wilson(0.0, 10)
    assert lo == 0.0 and hi == pytest.approx(27.75, abs=0.01)  # never below 0
    assert calibrate.wilson(None, 10) is None and calibrate.wilson(50.0, 0) is None
    narrow, wide = calibrate.wilson(50.0, 400), calibrate.wilson(50.0, 17)
    assert narrow and wide and narrow[1] - narrow[0] < wide[1] - wide[0]


def test_choice_maximises_f1_or_meets_the_target() -> None:
    points = calibrate.sweep(ROWS)
    assert calibrate.choose(points)["threshold"] == 0.1
    # at most a third of answerable refused: 0.6, 0.8 and 1.0 score 50; ties refuse less
    assert calibrate.choose(points, max_false_refusal=0.34)["threshold"] == 1.0
    # no threshold refuses under 0%... except those refusing nothing: the fewest wins
    none = [dict(p, false_refusal_rate=10.0 + i) for i, p in enumerate(points)]
    assert calibrate.choose(none, max_false_refusal=0.0)["threshold"] == 0.0


def _examples(prefix: str, n: int) -> list[Example]:
    out = []
    for i in range(n):
        answerable = i % 2 == 0
        out.append(
            Example(
                f"{prefix}{i}",
                f"Where is tower {i}?" if answerable else f"Who built tower {i}?",
                [f"Tower {i} is in Paris."],
                ["Paris"] if answerable else [],
                answerable=answerable,
                group=f"{prefix}g{i}",
            )
        )
    return out


def test_training_calibrates_and_eval_uses_it(
    tmp_path: Path, tiny_train_cfg: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jsonl(tmp_path / "train.jsonl", _examples("t", 6))
    write_jsonl(tmp_path / "held.jsonl", _examples("h", 6))
    cfg = tiny_train_cfg(tmp_path, eval_data=str(tmp_path / "held.jsonl"), max_steps=4)
    result = train.run(cfg)
    saved = abstain.read_calibration(result.adapter)
    assert saved is not None and saved["held_out"] == 6 and saved["target"] == "max_f1"
    assert result.metrics["refusal_calibration"]["threshold"] == saved["threshold"]
    assert result.metrics["refusal_calibration"]["score_auc"] == saved["score_auc"]
    assert 0 <= saved["score_auc"] <= 100
    ci = saved["chosen_interval"]["refusal_accuracy"]
    assert ci[0] <= saved["chosen"]["refusal_accuracy"] <= ci[1]
    assert set(saved["score_auc_by_lang"]) == {"en"}
    assert saved["thresholds_by_lang"] == {}  # one language: the pooled threshold is its own
    assert saved["score_auc_by_lang"]["en"] == saved["score_auc"]
    assert sorted(r["id"] for r in saved["scores"]) == sorted(e.id for e in _examples("h", 6))
    assert {p["threshold"] for p in saved["sweep"]} == (
        {r["refusal_score"] for r in saved["scores"]} | {0.0, 1.0}
    )
    assert (tmp_path / "run" / "heldout.jsonl").is_file()
    best = calibrate.choose(saved["sweep"])
    assert saved["threshold"] == best["threshold"]

    ev = evaluate.run(
        evaluate.EvalConfig(
            data=str(tmp_path / "held.jsonl"),
            out=str(tmp_path / "ev"),
            gen=GenerateConfig(model=cfg.model, adapter=str(tmp_path / "run"), max_new_tokens=4),
            runtime=cfg.runtime,
            latency_questions=0,
            semantic=False,
        )
    )
    assert ev["refusal_threshold"] == saved["threshold"] and ev["refusal_tradeoff"]
    rows = [json.loads(line) for line in (tmp_path / "ev" / "predictions.jsonl").open()]
    assert all(r["refusal_score"] is not None and "unrefused" in r for r in rows)
    assert all(
        r["refused"] == ((r["refusal_score"] > saved["threshold"]) or r["unrefused_refused"])
        for r in rows
    )

    # another target from the command line, same run
    assert (
        main(
            [
                "calibrate",
                str(tmp_path / "run"),
                "--max-false-refusal",
                "0",
                "runtime.threads=1",
                "runtime.dtype=fp32",
            ]
        )
        == 0
    )
    again = abstain.read_calibration(result.adapter)
    assert again is not None and again["target"] == "max_false_refusal=0.0"
    assert again["chosen"]["false_refusal_rate"] == min(
        p["false_refusal_rate"] for p in again["sweep"]
    )
    # Same adapter, questions and runtime as training's calibration: the same scores.
    first = {r["id"]: r["refusal_score"] for r in saved["scores"]}
    assert {r["id"]: r["refusal_score"] for r in again["scores"]} == pytest.approx(first)
    printed = capsys.readouterr().out
    assert "refusal threshold" in printed and "only 3 unanswerable and 3 answerable" in printed


def test_calibration_needs_both_kinds(tmp_path: Path, tiny_adapter_dir: Path) -> None:
    write_jsonl(tmp_path / "only.jsonl", [e for e in _examples("x", 4) if e.answerable])
    from ragtune.config import ConfigError

    with pytest.raises(ConfigError, match="answerable and unanswerable"):
        calibrate.run(
            calibrate.CalibrateConfig(
                run=str(tiny_adapter_dir), data=str(tmp_path / "only.jsonl"), model="x"
            )
        )


def test_full_finetune_calibrates_into_its_model_folder(
    tmp_path: Path, tiny_train_cfg: Any
) -> None:
    """A full fine-tune has no adapter: its threshold is saved in model/, and eval (given the
    run folder as the model), `ragtune calibrate` and the serve pool find it there."""
    from ragtune.serve.pool import ModelPool

    write_jsonl(tmp_path / "train.jsonl", _examples("t", 6))
    write_jsonl(tmp_path / "held.jsonl", _examples("h", 6))
    cfg = tiny_train_cfg(
        tmp_path, eval_data=str(tmp_path / "held.jsonl"), max_steps=2, method="full", lr=1e-3
    )
    result = train.run(cfg)
    run = tmp_path / "run"
    assert result.adapter == run / "model"
    saved = abstain.read_calibration(run)
    assert saved is not None and saved == abstain.read_calibration(run / "model")
    assert (run / "model" / abstain.CALIBRATION_FILE).is_file()
    assert result.metrics["refusal_calibration"]["threshold"] == saved["threshold"]
    # a base model (no training run) has no calibration, and auto falls back to greedy
    assert abstain.resolve_threshold("auto", None, cfg.model) is None
    assert abstain.resolve_threshold("auto", None, str(run)) == abstain.Threshold(
        saved["threshold"]
    )

    ev = evaluate.run(
        evaluate.EvalConfig(
            data=str(tmp_path / "held.jsonl"),
            out=str(tmp_path / "ev"),
            gen=GenerateConfig(model=str(run), max_new_tokens=4),
            runtime=cfg.runtime,
            latency_questions=0,
            semantic=False,
        )
    )
    assert ev["refusal_threshold"] == saved["threshold"]

    args = ["calibrate", str(run), "--max-false-refusal", "0", "runtime.threads=1"]
    assert main([*args, "runtime.dtype=fp32"]) == 0
    again = abstain.read_calibration(run)
    assert again is not None and again["target"] == "max_false_refusal=0.0"
    first = {r["id"]: r["refusal_score"] for r in saved["scores"]}
    assert {r["id"]: r["refusal_score"] for r in again["scores"]} == pytest.approx(first)

    rt = runtime.resolve(cfg.runtime)
    pool = ModelPool.load(str(run), {}, rt, max_new_tokens=4)
    assert pool.entries[str(run)].threshold == abstain.Threshold(again["threshold"])


def _zh_examples(n: int) -> list[Example]:
    return [
        Example(
            f"z{i}",
            f"{i}号塔在哪里？" if i % 2 == 0 else f"谁建了{i}号塔？",
            [f"{i}号塔在巴黎。"],
            ["巴黎"] if i % 2 == 0 else [],
            answerable=i % 2 == 0,
            group=f"zg{i}",
        )
        for i in range(n)
    ]


def test_calibration_per_language_end_to_end(tmp_path: Path, tiny_model_dir: Path) -> None:
    """On English and Chinese held-out questions (10 of each kind each) calibration chooses
    each language's threshold on its own rows, reports what they score together, and an
    eval decided by that record applies them and marks that point."""
    from ragtune.generation.local import LocalGenerator
    from ragtune.models import load_model
    from ragtune.prompt.grounded import PromptConfig

    model, tok = load_model(str(tiny_model_dir))
    engine = LocalGenerator(model, tok, max_new_tokens=4, batch_size=8, name="tiny")
    mixed = _examples("e", 20) + _zh_examples(20)
    record = calibrate.calibrate(engine, mixed, PromptConfig(), calibrate.CalibrateSection())
    scores = record["scores"]
    assert {r["question_lang"] for r in scores} == {"en", "zh"}
    assert set(record["thresholds_by_lang"]) == {"en", "zh"}
    for lang, t in record["thresholds_by_lang"].items():
        own = [r for r in scores if r["question_lang"] == lang]
        assert t == calibrate.choose(calibrate.sweep(own))["threshold"]
        assert record["chosen_by_lang"][lang]["held_out"] == 20
    assert record["threshold"] == calibrate.choose(record["sweep"])["threshold"]
    applied = abstain.saved_threshold(record)
    assert applied is not None
    together = calibrate.point(scores, applied)
    assert record["chosen"] == {"threshold": record["threshold"], **together}
    off = calibrate.calibrate(
        engine, mixed, PromptConfig(), calibrate.CalibrateSection(per_language=False)
    )
    assert off["thresholds_by_lang"] == {} and off["threshold"] == record["threshold"]
    # 9 unanswerable Chinese questions are too few for a threshold of their own
    fewer = calibrate.calibrate(
        engine, _examples("e", 20) + _zh_examples(18), PromptConfig(), calibrate.CalibrateSection()
    )
    assert set(fewer["thresholds_by_lang"]) == {"en"}

    with pytest.raises(RunError, match="not a training run"):
        calibrate.save(tiny_model_dir, record)  # a base model's folder takes no calibration
    # the tiny model as a full fine-tune's run, with this record's thresholds made to differ
    # by language (Chinese refuses everything, English nothing by score): eval applies them
    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "train_config.yaml").write_text("method: full\n")
    record = dict(record, threshold=1.0, thresholds_by_lang={"en": 1.0, "zh": 0.0})
    applied = abstain.Threshold.of(1.0, {"en": 1.0, "zh": 0.0})
    calibrate.save(run, record)
    write_jsonl(tmp_path / "mixed.jsonl", mixed)
    ev = evaluate.run(
        evaluate.EvalConfig(
            data=str(tmp_path / "mixed.jsonl"),
            out=str(tmp_path / "ev"),
            gen=GenerateConfig(model=str(run), max_new_tokens=4),
            latency_questions=0,
            semantic=False,
        )
    )
    assert ev["refusal_thresholds_by_lang"] == record["thresholds_by_lang"]
    rows = [json.loads(line) for line in (tmp_path / "ev" / "predictions.jsonl").open()]
    for r in rows:
        at = record["thresholds_by_lang"][r["lang"]]
        assert r["refused"] == ((r["refusal_score"] > at) or r["unrefused_refused"])
    assert all(r["refused"] for r in rows if r["lang"] == "zh")
    assert ev["refusal_applied_point"] == calibrate.point(rows, applied)
    assert "one per language" in (tmp_path / "ev" / "report.md").read_text()
