"""The demo's training budget: what a target wall time leaves after the evaluations."""

from __future__ import annotations

import pytest

from ragtune.demo.stage import (
    CALIBRATION_FACTOR,
    OVERHEAD_MIN,
    PROBE_FACTOR,
    TUNED_EVAL_FACTOR,
    training_minutes,
)


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
