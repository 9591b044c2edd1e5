"""Training-time reporting: a progress bar with loss, tokens/s and ETA, the loss-curve PNG,
and peak memory; and the periodic purge of kept pages. Plugged into the Trainer by
`ragtune.train`.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

from ragtune import atomic


class ProgressBar(TrainerCallback):
    """One tqdm bar over optimizer steps; the postfix shows the last loss and tokens/s."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.t0 = 0.0
        self.tokens0 = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self.t0, self.tokens0 = time.perf_counter(), int(state.num_input_tokens_seen or 0)

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.bar is not None:
            if self.bar.total != state.max_steps:  # a time budget shortened the run
                self.bar.total = state.max_steps
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if self.bar is None or not logs:
            return
        elapsed = time.perf_counter() - self.t0
        tok_s = (int(state.num_input_tokens_seen or 0) - self.tokens0) / max(elapsed, 1e-9)
        post = {"tok/s": f"{tok_s:.0f}"}
        if "loss" in logs:
            post["loss"] = f"{logs['loss']:.3f}"
        if "eval_loss" in logs:
            post["eval_loss"] = f"{logs['eval_loss']:.3f}"
        self.bar.set_postfix(post, refresh=True)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PagePurge(TrainerCallback):
    """While training keeps freed pages (`allocator.pages_kept`), give them back every
    `every` optimizer steps and after each eval pass, whose batches have other shapes: what
    is kept stays what a few steps leave instead of growing with the run."""

    def __init__(self, purge: Callable[[], object], every: int) -> None:
        self.purge, self.every = purge, every

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step % self.every == 0:
            self.purge()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.purge()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def plot_loss_curve(history: list[dict[str, Any]], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", color="#2563eb")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", color="#dc2626")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic.write_bytes(path, buf.getvalue())
