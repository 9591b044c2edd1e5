"""The demo's training budget (what a target wall time leaves after the evaluations), and
a finished demo run again with another probe setting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ragtune import runs
from ragtune.demo.stage import (
    CALIBRATION_FACTOR,
    OVERHEAD_MIN,
    PROBE_FACTOR,
    TUNED_EVAL_FACTOR,
    training_minutes,
)
from ragtune.eval import calibrate
from ragtune.generation import abstain
from ragtune.generation.probe import PROBE_FILE
from ragtune.runtime import RuntimeSection


def test_training_gets_what_the_evaluations_leave() -> None:
    # a 60 s base evaluation: both evaluations and the calibration take 60 * (1 + ...) s
    expected = 9.5 - OVERHEAD_MIN - 60 * (1 + TUNED_EVAL_FACTOR + CALIBRATION_FACTOR) / 60
    assert training_minutes(9.5, 60.0) == pytest.approx(round(expected, 1))
    # fitting the refusal probe (demo.probe) comes out of the training budget too
    assert training_minutes(9.5, 60.0, probe=True) == pytest.approx(
        round(expected - PROBE_FACTOR, 1)
    )
    assert training_minutes(9.5, 120.0) < training_minutes(9.5, 60.0)  # a slower machine


def test_no_target_means_no_budget_and_a_floor_of_one_minute() -> None:
    assert training_minutes(0, 60.0) == 0.0
    assert training_minutes(2.0, 600.0) == 1.0


def test_a_finished_demo_follows_its_probe_setting(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo finished without the refusal probe and run again with `probe=true` keeps its
    training and is calibrated again with a probe, its tuned eval scored with it; turned
    off again, the probe is removed. Never the old state silently kept."""
    from ragtune.demo import dataset, stage

    # 48 training documents: enough unanswerable questions (>= 20) for the probe to fit.
    monkeypatch.setattr(stage, "build_demo_set", lambda seed=0: dataset.build_demo_set(seed, 48, 4))
    cfg = stage.DemoConfig(
        model=str(tiny_model_dir),
        out=str(tmp_path / "demo"),
        epochs=0.1,
        minutes=0,  # no budget: the training identity does not change with `probe`
        max_new_tokens=4,
        runtime=RuntimeSection(threads=1, dtype="fp32"),
    )
    train_dir = tmp_path / "demo" / "train"
    probe_file = train_dir / runs.ADAPTER / PROBE_FILE
    tuned_metrics = tmp_path / "demo" / "tuned" / runs.EVAL_METRICS

    stage.run(cfg)
    trained = (train_dir / runs.TRAIN_METRICS).stat().st_mtime_ns
    assert not probe_file.exists()
    assert json.loads(tuned_metrics.read_text())["refusal_score_source"].startswith("start")

    stage.run(dataclasses.replace(cfg, probe=True))
    record = abstain.read_calibration(train_dir)
    assert probe_file.exists() and record is not None and record["score"] == "probe"
    assert (train_dir / runs.TRAIN_METRICS).stat().st_mtime_ns == trained  # not retrained
    assert json.loads(tuned_metrics.read_text())["refusal_score_source"].startswith("probe")

    stage.run(cfg)
    record = abstain.read_calibration(train_dir)
    assert not probe_file.exists() and record is not None and record["score"] == "start"
    assert json.loads(tuned_metrics.read_text())["refusal_score_source"].startswith("start")

    # Calibrated again by other means since (`ragtune calibrate`, or a run killed between
    # calibrating and evaluating): the tuned eval is decided again at the threshold now.
    calibrate.save(
        train_dir / runs.ADAPTER, {**record, "threshold": 0.123, "thresholds_by_lang": {}}
    )
    stage.run(cfg)
    assert json.loads(tuned_metrics.read_text())["refusal_threshold"] == 0.123
