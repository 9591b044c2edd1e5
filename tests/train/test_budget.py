"""A time budget shortens training to what fits, measured in its first steps: the schedule
still warms up and decays to its end, evaluations are counted, and a resume keeps the length."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import get_scheduler

from ragtune.train import budget
from ragtune.train import stage as train
from ragtune.train.budget import TimeBudget, compress_schedule
from ragtune.train.callbacks import ProgressBar


def _scheduler(kind: str, steps: int, warmup: int) -> Any:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=steps)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_compressed_schedule_warms_up_and_ends_at_the_new_length(kind: str) -> None:
    sched = _scheduler(kind, 100, 10)
    assert compress_schedule(sched, 100, 50)
    lam = sched.lr_lambdas[0]
    assert lam(5) == pytest.approx(1.0)  # warmup shrank with the run: 10 -> 5 steps
    assert lam(4) < 1.0 and lam(50) == pytest.approx(0.0, abs=1e-9)
    # the same curve at half the length: step 25 of 50 is step 50 of 100
    assert lam(25) == pytest.approx(_scheduler(kind, 100, 10).lr_lambdas[0](50), abs=1e-6)
    assert not compress_schedule(_scheduler("constant", 100, 0), 100, 50)
    # mid-run, the optimizer's current rate moves onto the new curve at once
    sched = _scheduler(kind, 100, 10)
    for _ in range(20):
        sched.optimizer.step()
        sched.step()
    compress_schedule(sched, 100, 40)
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(sched.lr_lambdas[0](20))
    assert sched.get_last_lr() == [pytest.approx(sched.lr_lambdas[0](20))]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The budget's clock, moved by hand."""
    fake = Clock()
    monkeypatch.setattr(budget.time, "perf_counter", fake)
    return fake


def _run_steps(cb: TimeBudget, clock: Clock, state: Any, steps: int, step_s: float) -> None:
    args = SimpleNamespace(eval_steps=state.eval_steps, save_steps=state.save_steps)
    sched = _scheduler("linear", state.max_steps, 0)
    cb.on_train_begin(args, state, None, lr_scheduler=sched)
    while state.global_step < min(steps, state.max_steps):
        clock.t += step_s
        state.global_step += 1
        cb.on_step_end(args, state, None, lr_scheduler=sched)


def test_the_run_is_cut_to_the_steps_that_fit(tmp_path: Path, clock: Clock) -> None:
    state = SimpleNamespace(global_step=0, max_steps=100, eval_steps=0, save_steps=20)
    cb = TimeBudget(30, tmp_path)
    _run_steps(cb, clock, state, 100, step_s=2.0)
    # decided after step 4 at t=8: 8 + (s - 4) * 2 <= 30  ->  s = 15
    assert state.max_steps == 15 and state.global_step == 15
    assert state.save_steps == 20  # checkpoints keep their spacing (the end is saved too)
    saved = json.loads((tmp_path / "budget.json").read_text())
    assert saved == {**saved, "planned_steps": 100, "max_steps": 15, "step_s": 2.0}


def test_evaluations_count_against_the_budget(tmp_path: Path, clock: Clock) -> None:
    state = SimpleNamespace(global_step=0, max_steps=100, eval_steps=10, save_steps=10)
    # eval guess: 2 s/step * 1/3 * 12 examples / 4 per step = 2 s per evaluation
    cb = TimeBudget(40, tmp_path, eval_examples=12, examples_per_step=4)
    _run_steps(cb, clock, state, 4, step_s=2.0)
    # evaluations keep their spacing, at step 10 and at the end:
    # 8 + (s - 4) * 2 + 2 * 2 <= 40  ->  s = 18
    assert state.max_steps == 18 and state.eval_steps == 10
    assert cb.decision is not None and cb.decision["eval_s"] == 2.0
    # the first real evaluation takes 5 s: the run is re-sized with it
    clock.t += 2.0  # step 5
    state.global_step = 5
    cb.on_step_end(SimpleNamespace(eval_steps=10, save_steps=10), state, None)
    clock.t += 5.0
    cb.on_evaluate(SimpleNamespace(eval_steps=10, save_steps=10), state, None)
    # now t=15: 15 + (s - 5) * 2 + evaluations (at 10, and at s unless s = 10) * 5 <= 40
    # -> s = 12: 15 + 14 + 2 * 5 = 39
    assert state.max_steps == 12


def test_the_recheck_times_every_step_so_far(tmp_path: Path, clock: Clock) -> None:
    # Steps 2-4 are fast; later ones are slower (the step after each purge of kept pages
    # faults its memory in again): the re-check at the first evaluation sees them all.
    state = SimpleNamespace(global_step=0, max_steps=100, eval_steps=10, save_steps=10)
    cb = TimeBudget(60, tmp_path)
    _run_steps(cb, clock, state, 4, step_s=1.0)
    assert state.max_steps == 60  # 4 + (s - 4) * 1 <= 60
    args = SimpleNamespace(eval_steps=10, save_steps=10)
    for step in range(5, 11):
        clock.t += 3.0
        state.global_step = step
        cb.on_step_end(args, state, None)
    cb.on_evaluate(args, state, None)
    # t = 22; (22 - 1) / 9 = 2.33 s a step: 22 + (s - 10) * 2.33 <= 60  ->  s = 26
    # (timed on steps 2-4 alone it would stay at 1 s a step and keep 48)
    assert state.max_steps == 26


def test_every_evaluation_re_checks_a_run_that_slowed_down(tmp_path: Path, clock: Clock) -> None:
    state = SimpleNamespace(global_step=0, max_steps=40, eval_steps=10, save_steps=10)
    cb = TimeBudget(100, tmp_path)
    args = SimpleNamespace(eval_steps=10, save_steps=10)
    _run_steps(cb, clock, state, 10, step_s=1.0)
    cb.on_evaluate(args, state, None)  # t = 10: 10 + 30 * 1 + 3 evaluations * 0 fits
    assert state.max_steps == 40
    for step in range(11, 21):  # the machine slows down: 5 s a step
        clock.t += 5.0
        state.global_step = step
        cb.on_step_end(args, state, None)
    cb.on_evaluate(args, state, None)
    # t = 60, (60 - 1) / 19 = 3.1 s a step: 60 + (s - 20) * 3.1 + evaluations * 0 <= 100
    # -> s = 32 (the 40 planned would have ended near t = 85 + 8 * 5 = 125)
    assert state.max_steps == 32
    saved = json.loads((tmp_path / "budget.json").read_text())
    assert saved["max_steps"] == 32  # a resumed run keeps the latest length


def test_a_run_that_fits_is_left_alone(tmp_path: Path, clock: Clock) -> None:
    state = SimpleNamespace(global_step=0, max_steps=10, eval_steps=0, save_steps=5)
    cb = TimeBudget(600, tmp_path)
    _run_steps(cb, clock, state, 10, step_s=2.0)
    assert state.max_steps == 10 and not (tmp_path / "budget.json").exists()
    assert cb.decision is not None and cb.decision["max_steps"] == 10


def test_training_is_shortened_and_a_resume_keeps_the_length(
    tmp_path: Path, tiny_train_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget already spent when the first steps are timed: the run ends one step later.
    cfg = tiny_train_cfg(tmp_path, max_steps=30, time_budget_min=1e-4, scheduler="linear")

    def crash(self: object, args: object, state: Any, control: object, **kw: object) -> None:
        if state.global_step == budget.MEASURE_STEPS + 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(ProgressBar, "on_step_end", crash)
    with pytest.raises(KeyboardInterrupt):
        train.run(cfg)
    monkeypatch.undo()
    run = tmp_path / "run"
    assert json.loads((run / "budget.json").read_text())["max_steps"] == budget.MEASURE_STEPS + 2
    result = train.run(
        tiny_train_cfg(
            tmp_path, max_steps=30, time_budget_min=1e-4, scheduler="linear", resume=True
        )
    )
    m = result.metrics
    # resumed from step 4 and stopped at the saved length, not re-measured (that needs 4 more)
    assert m["steps"] == budget.MEASURE_STEPS + 2 and m["resumed_from"].endswith("checkpoint-4")
    assert m["time_budget"]["max_steps"] == m["steps"]
    lrs = [
        h["learning_rate"]
        for h in json.loads((run / f"checkpoint-{m['steps']}" / "trainer_state.json").read_text())[
            "log_history"
        ]
        if "learning_rate" in h
    ]
    # the compressed linear schedule: step 5 of 5 runs at 1/5 of the peak (0.0087 uncompressed)
    assert lrs[-1] == pytest.approx(1e-2 / 5)
