"""Training that fits a time budget: measure the first steps, then shorten the run to fit.

A fixed number of steps takes 8 minutes on one processor and 20 on another (bf16 vs fp32
speed, free cores). `TimeBudget` times a few optimizer steps after the first (which pays for
kernel selection and allocation), projects the whole run, evaluation passes included, and
when it would overrun shortens it: `state.max_steps` moves (the Trainer's own flow then
evaluates, saves and stops there), and the learning-rate schedule is compressed to the new
length so it still warms up and decays fully. Evaluation keeps its configured spacing, so a
shortened run evaluates less often: in the demo on fp32 an evaluation pass cost two steps,
and scaling the spacing down with the run spent a third of the budget on them. It re-checks
after each evaluation (the first one's cost is only known then, and a machine can slow down
mid-run), and only ever shortens. The decision is written to `budget.json` in the run
folder, so a resumed run keeps the same length instead of measuring again (`saved_length`:
the stage sets it as the run's max_steps and adds no callback).

    trainer = Trainer(..., callbacks=[TimeBudget(300, out, eval_examples=50)])
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ragtune import atomic
from ragtune.runs import TRAIN_BUDGET

MEASURE_STEPS = 3
"""Optimizer steps timed (after the first) before the run is sized."""
EVAL_COST_PER_EXAMPLE = 1 / 3
"""An eval example's forward pass, as a share of a training example's forward + backward:
the first guess of an evaluation's cost, replaced by its measured time after the first one."""


def saved_length(out: Path) -> dict[str, Any] | None:
    """The decision an earlier session of this run (the folder's identity is checked by the
    stage) wrote, or None."""
    try:
        record = json.loads((Path(out) / TRAIN_BUDGET).read_text(encoding="utf-8"))
        int(record["max_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return dict(record)


def compress_schedule(lr_scheduler: Any, old_steps: int, new_steps: int) -> bool:
    """Rescale a transformers LambdaLR schedule (linear, cosine, ... built with
    functools.partial) from `old_steps` to `new_steps` total steps, warmup in proportion.
    Returns False for a schedule with no length (constant), which needs no change."""
    lambdas = getattr(lr_scheduler, "lr_lambdas", None)
    if not lambdas:
        return False
    changed = False
    for i, lam in enumerate(lambdas):
        if not isinstance(lam, functools.partial) or "num_training_steps" not in lam.keywords:
            continue
        kw = dict(lam.keywords, num_training_steps=new_steps)
        if "num_warmup_steps" in kw:
            kw["num_warmup_steps"] = round(kw["num_warmup_steps"] * new_steps / old_steps)
        lambdas[i] = functools.partial(lam.func, *lam.args, **kw)
        changed = True
    if changed:  # the next step already takes its rate from the new curve
        step = lr_scheduler.last_epoch
        rates = [base * lam(step) for base, lam in zip(lr_scheduler.base_lrs, lambdas, strict=True)]
        for group, rate in zip(lr_scheduler.optimizer.param_groups, rates, strict=True):
            group["lr"] = rate
        lr_scheduler._last_lr = rates
    return changed


class TimeBudget(TrainerCallback):
    """Shortens training to fit `budget_s` seconds of this process's training loop."""

    def __init__(
        self, budget_s: float, out: Path, *, eval_examples: int = 0, examples_per_step: int = 1
    ) -> None:
        self.budget_s = budget_s
        self.path = Path(out) / TRAIN_BUDGET
        self.eval_examples = eval_examples
        self.examples_per_step = examples_per_step
        self.t0 = 0.0
        self.step_t: dict[int, float] = {}  # global step -> perf_counter at its end
        self.eval_s: float | None = None  # measured seconds of one evaluation
        self.planned = 0  # the max_steps before any shortening
        self.decision: dict[str, Any] | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.t0 = time.perf_counter()
        self.planned = state.max_steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.step_t[state.global_step] = time.perf_counter()
        if len(self.step_t) == MEASURE_STEPS + 1 and self.decision is None:
            self._check(args, state, kw.get("lr_scheduler"))

    def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # on_step_end of this step ran just before the evaluation began. Every evaluation
        # re-checks, with its own cost and every step so far: a machine that slows down
        # mid-run (a noisy neighbour: steps went from 3.6 to 5.5 s in one demo) still fits.
        last = self.step_t.get(state.global_step)
        if last is not None:
            self.eval_s = time.perf_counter() - last
            self._check(args, state, kw.get("lr_scheduler"))

    def _step_s(self) -> float | None:
        """Seconds per optimizer step, from every step timed so far after the first one: at
        the re-check after the first evaluation that includes the slower step after each
        purge of kept pages (`allocator.PURGE_EVERY`), which the first few steps miss."""
        timed = sorted(self.step_t)
        if len(timed) < MEASURE_STEPS + 1:
            return None
        first, last = timed[0], timed[-1]
        return (self.step_t[last] - self.step_t[first]) / (last - first)

    def _check(self, args: Any, state: Any, lr_scheduler: Any) -> None:
        step_s = self._step_s()
        if step_s is None:
            return
        now = time.perf_counter() - self.t0
        configured_eval = getattr(args, "eval_steps", None) if self.eval_examples else None
        eval_s = self.eval_s
        if eval_s is None:
            eval_s = step_s * EVAL_COST_PER_EXAMPLE * self.eval_examples / self.examples_per_step
        step = state.global_step
        fits = state.max_steps
        while fits > step + 1:  # the most steps s with: now + steps + evaluations <= budget
            evals = 0
            if configured_eval:
                every = int(configured_eval)
                evals = fits // every - step // every + (fits % every != 0)  # + the final one
            if now + (fits - step) * step_s + evals * eval_s <= self.budget_s:
                break
            fits -= 1
        record = {
            "budget_s": self.budget_s,
            "planned_steps": self.planned,
            "max_steps": fits,
            "step_s": round(step_s, 3),
            "eval_s": round(eval_s, 2) if configured_eval else None,
        }
        if fits < state.max_steps:
            self._shorten(args, state, lr_scheduler, fits, record)
            atomic.write_json(self.path, record)
        elif self.decision is None:
            self.decision = record

    def _shorten(
        self, args: Any, state: Any, lr_scheduler: Any, steps: int, record: dict[str, Any]
    ) -> None:
        if steps >= state.max_steps:
            return
        compressed = compress_schedule(lr_scheduler, state.max_steps, steps)
        old, state.max_steps = state.max_steps, steps
        self.decision = record
        how = (
            "schedule compressed to fit" if compressed else "its schedule has no length to compress"
        )
        print(
            f"\ntrain: time budget {self.budget_s / 60:.1f} min: {record.get('step_s')} s a step, "
            f"{old} -> {steps} steps ({how})",
            flush=True,
        )
