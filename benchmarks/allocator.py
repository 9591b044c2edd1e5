"""The allocator, side by side in one run: glibc's malloc vs jemalloc (`ragtune.allocator`).

Each allocator runs the same sequence in its own process, as `ragtune demo` does in one:
answer held-out prompts with the base model (fresh process), LoRA-train for --steps steps,
then answer the same prompts again with the base model reloaded. Reported per allocator:
prompt tokens/s and seconds per answer before and after training, training tokens/s and
peak RSS, the median of --rounds runs each (glibc, jemalloc, jemalloc, glibc, ...); then the
jemalloc / glibc ratios. The question it answers: does the allocator
(chosen once, when the process starts) change training speed, and inference speed after a
training run in the same process?

    python benchmarks/allocator.py --out benchmarks/out/allocator
    python benchmarks/allocator.py --model ~/.cache/ragtune/models/qwen2.5-coder-0.5b-instruct.gguf \
        --steps 10 --out benchmarks/out/allocator-qwen05

Uses the offline demo set (no shared data needed). Needs libjemalloc2 (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ALLOCATORS = ("system", "jemalloc")


def prompt_rate(gen: Any, msgs: list, repeats: int) -> dict[str, float]:
    """Best of `repeats` passes: prompt tokens/s (eval's own measure) and s per answer."""
    from ragtune.eval import metrics

    best: dict[str, float] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = gen.generate(msgs)
        wall = time.perf_counter() - t0
        rate = float(
            metrics.timing([dataclasses.asdict(g) for g in out])["prompt_tokens_per_s"] or 0.0
        )
        if not best or rate > best["prompt_tokens_per_s"]:
            best = {"prompt_tokens_per_s": rate, "s_per_answer": wall / len(msgs)}
    return best


def run_part(args: argparse.Namespace) -> dict[str, Any]:
    """One allocator's sequence, in this process (started with that allocator)."""
    from ragtune import allocator, runtime
    from ragtune.data.importers import load_examples
    from ragtune.generation.load import GenerateConfig, load_generator
    from ragtune.prompt.grounded import PromptConfig, build_messages
    from ragtune.train import stage as train
    from ragtune.train.callbacks import peak_rss_mb
    from ragtune.train.config import LoraSection, TrainConfig

    out = Path(args.out)
    rt = runtime.resolve(runtime.RuntimeSection(threads=args.threads))
    runtime.set_torch_threads(rt.threads)
    evals = load_examples(str(out / "data" / "eval.jsonl"))
    msgs = [build_messages(e.question, e.contexts, PromptConfig()) for e in evals]
    gen_cfg = GenerateConfig(model=args.model, max_new_tokens=16, batch_size=16)

    def answer() -> dict[str, float]:
        gen = load_generator(gen_cfg, rt)
        gen.generate(msgs[:2])  # warm-up: first-call costs are not the allocator's
        return prompt_rate(gen, msgs, args.repeats)

    before = answer()
    train_dir = out / f"train-{args.part}"
    shutil.rmtree(train_dir, ignore_errors=True)
    tm = train.run(
        TrainConfig(
            data=str(out / "data" / "train.jsonl"),
            model=args.model,
            out=str(train_dir),
            lora=LoraSection(r=16, alpha=32),
            lr=3e-4,
            max_steps=args.steps,
            eval_fraction=0.0,
            batch_size=4,
            grad_accum=2,
            max_length=512,
            seed=args.seed,
            runtime=runtime.RuntimeSection(threads=rt.threads),
        )
    ).metrics
    after = answer()
    return {
        "allocator": allocator.loaded(),
        "before": before,
        "after": after,
        "train_tokens_per_s": tm["tokens_per_s"],
        "train_steps": tm["steps"],
        "peak_rss_mb": peak_rss_mb(),
    }


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """Each measure's median over the rounds (min-max beside it when there are several) per
    allocator, and the ratio of the medians."""
    rows = [
        ("prompt tokens/s, fresh process", lambda r: r["before"]["prompt_tokens_per_s"], "{:,.0f}"),
        ("prompt tokens/s, after training", lambda r: r["after"]["prompt_tokens_per_s"], "{:,.0f}"),
        ("s per answer, fresh process", lambda r: r["before"]["s_per_answer"], "{:.3f}"),
        ("s per answer, after training", lambda r: r["after"]["s_per_answer"], "{:.3f}"),
        ("training tokens/s", lambda r: r["train_tokens_per_s"], "{:,.0f}"),
        ("peak RSS, MB", lambda r: r["peak_rss_mb"], "{:,.0f}"),
    ]
    lines = ["| measure | glibc malloc | jemalloc | jemalloc / glibc |", "|---|---|---|---|"]
    for name, get, fmt in rows:
        cells, mids = [], []
        for alloc in ALLOCATORS:
            values = [float(get(r)) for r in results[alloc]]
            mid = statistics.median(values)
            spread = (
                f" ({fmt.format(min(values))}-{fmt.format(max(values))})" if len(values) > 1 else ""
            )
            cells.append(fmt.format(mid) + spread)
            mids.append(mid)
        ratio = f"{mids[1] / mids[0]:.2f}x" if mids[0] else "-"
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One part in a fresh process started with RAGTUNE_MALLOC=name (its progress shows on
    stderr); its result, checked to have run on that allocator."""
    from ragtune import allocator

    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env[allocator.ENV] = name
    cmd = [sys.executable, __file__, *sys.argv[1:], "--part", name]
    print(f"== {name}", flush=True)
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{name} part failed (exit {done.returncode}); its stderr is above")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    if result["allocator"] != name:
        raise SystemExit(f"{name} part ran on {result['allocator']}")
    return result


def main() -> None:
    from ragtune import allocator

    # A part started with RAGTUNE_MALLOC=jemalloc re-executes itself on it, as the ragtune
    # command does; with RAGTUNE_MALLOC=system it stays on glibc's.
    allocator.ensure()
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="benchmarks/out/allocator")
    ap.add_argument("--steps", type=int, default=20, help="training steps between the two evals")
    ap.add_argument("--prompts", type=int, default=32, help="held-out prompts answered")
    ap.add_argument("--repeats", type=int, default=2, help="passes over them; the best counts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs per allocator, in the order glibc, jemalloc, jemalloc, glibc, ... (drift "
        "on a shared machine then falls on both)",
    )
    ap.add_argument("--part", choices=ALLOCATORS, help="run one allocator (the orchestrator's)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    if args.part:
        print("RESULT " + json.dumps(run_part(args)), flush=True)
        return

    from ragtune import atomic, probe
    from ragtune.demo.dataset import build_demo_set
    from ragtune.example import write_jsonl

    if allocator.find_jemalloc() is None:
        raise SystemExit(f"{allocator.SONAME} not found: apt-get install libjemalloc2")
    train_set, evals = build_demo_set(seed=args.seed)
    write_jsonl(out / "data" / "train.jsonl", train_set)
    write_jsonl(out / "data" / "eval.jsonl", evals[: args.prompts])
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ALLOCATORS}
    for i in range(args.rounds):
        for name in ALLOCATORS if i % 2 == 0 else ALLOCATORS[::-1]:
            results[name].append(run_one(name, args))
    cpu = probe.cpu_model_name()
    report = table(results)
    atomic.write_json(out / "results.json", {"cpu": cpu, "args": vars(args), **results})
    print(
        f"\n{args.model}, {args.steps} training steps, {args.prompts} prompts, {args.rounds} "
        f"round(s); CPU {cpu}\n"
    )
    print(report)


if __name__ == "__main__":
    main()
