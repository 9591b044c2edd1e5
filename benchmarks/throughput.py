"""Throughput, side by side in one run: ragtune vs a plain Trainer + peft baseline (training)
and vs llama.cpp (generation), on the same model, data and LoRA settings.

Parts, each in its own subprocess so peak RSS is per part and no part warms another's caches:
- peak: this machine's bf16 and fp32 matmul GFLOP/s (the yardstick for "fraction of peak").
- baseline_fp32: transformers Trainer + peft LoRA as a tutorial writes it (fp32, random
  batches padded by DataCollatorForSeq2Seq, loss over full-vocabulary logits).
- baseline_bf16: the same with bf16=True (autocast), the strongest "plain" setting.
- ragtune: `ragtune.train.stage.run` with the same examples, rank, alpha, dropout, lr, schedule
  (linear, no warmup: the Trainer's defaults), batch, steps, seed and LoRA init.
- ragtune_ckpt (optional, not in the default list): the same with gradient_checkpointing=true.
- eval_baseline / eval_ragtune: held-out F1 of the two bf16 adapters (speed must not cost F1).
- gen_ragtune: ragtune's batched generation path on held-out prompts.
- gen_tuned: the same with the ragtune part's adapter merged in: a tuned model must generate
  as fast as its base (its frozen weights once sent the LM head down a slow matmul path).
- gen_llamacpp: llama.cpp (llama-cpp-python), one prompt at a time, same prompts and model file
  (and other GGUF files of the same weights given with --also-gguf).

Tokens/s counts real (non-padding) tokens per second of the training loop; model loading is
excluded for all. Fraction of peak uses 4*N FLOPs per token (forward 2N plus input gradients
2N; frozen weights need no weight gradients), N = the parameters that take part in matmuls
(all but an untied input embedding).

    python benchmarks/throughput.py --model smollm2-135m --out benchmarks/out/throughput-smollm2
    python benchmarks/throughput.py --model ~/.cache/ragtune/models/qwen2.5-coder-0.5b-instruct.gguf \
        --steps 12 --out benchmarks/out/throughput-qwen05

Reads the shared SQuAD 2.0 sample (--data) and falls back to the offline demo set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SHARED_SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad2_sample.json"
TRAINING_PARTS = ("baseline_fp32", "baseline_bf16", "ragtune", "ragtune_ckpt")
PARTS = [
    "peak",
    "baseline_fp32",
    "baseline_bf16",
    "ragtune",
    "eval_baseline",
    "eval_ragtune",
    "gen_ragtune",
    "gen_tuned",
    "gen_llamacpp",
]


def peak_rss_mb() -> int:
    from ragtune.train.callbacks import peak_rss_mb as rss

    return int(rss())


# --- data --------------------------------------------------------------------------------------


def prepare_data(args: argparse.Namespace, out: Path) -> None:
    """train.jsonl and eval.jsonl under out/data: held-out articles for eval, as ragtune splits."""
    from ragtune.data.importers import import_data
    from ragtune.data.split import split_indices
    from ragtune.example import write_jsonl

    if (out / "data" / "eval.jsonl").is_file():
        return
    if Path(args.data).is_file():
        exs = import_data(args.data, skip_empty_questions=True).examples
        tr, ev, _ = split_indices(exs, 0.2, args.seed)
        train, evals = [exs[i] for i in tr], [exs[i] for i in ev]
    else:
        from ragtune.demo.dataset import build_demo_set

        print(f"{args.data}: not found, using the offline demo set")
        train, evals = build_demo_set(seed=args.seed)
    rng = random.Random(args.seed)
    answerable = [e for e in evals if e.answerable]
    # Answerable training questions only: a few dozen steps on SQuAD 2.0's mix teach a small
    # model to refuse everything, and the held-out F1 check would then compare two zeros.
    train = [e for e in train if e.answerable]
    # Exactly one epoch of steps x batch examples: every training part sees the same
    # examples. With a larger pool, ragtune's length-grouped sampler would start on its
    # longest batches while the baselines draw at random, and the token mix would differ.
    n = min(len(train), args.steps * args.batch_size)
    write_jsonl(out / "data" / "train.jsonl", rng.sample(train, n))
    write_jsonl(
        out / "data" / "eval.jsonl", rng.sample(answerable, min(args.eval_n, len(answerable)))
    )


def encoded_rows(args: argparse.Namespace, tokenizer: Any) -> list[dict[str, Any]]:
    from ragtune.data.importers import load_examples
    from ragtune.prompt.encode import encode_example
    from ragtune.prompt.grounded import PromptConfig

    exs = load_examples(str(Path(args.out) / "data" / "train.jsonl"))
    rows = []
    for ex in exs:
        enc = encode_example(tokenizer, ex, PromptConfig(), args.max_length)
        rows.append({"input_ids": enc["input_ids"], "labels": enc["labels"]})
    return rows


# --- parts -------------------------------------------------------------------------------------


def part_peak(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)

    def gflops(dtype: torch.dtype, n: int, reps: int) -> float:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(2):
            a @ b
        best = float("inf")
        for _ in range(reps):  # best of several: the machine's capability, not its noise
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9

    return {
        "bf16_gflops": round(gflops(torch.bfloat16, 2048, 8), 1),
        "fp32_gflops": round(gflops(torch.float32, 2048, 4), 1),
    }


def part_baseline(args: argparse.Namespace, bf16: bool) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )

    from ragtune.models import load_tokenizer, resolve

    tokenizer = load_tokenizer(args.model)
    model = AutoModelForCausalLM.from_pretrained(resolve(args.model))  # fp32, as loaded by default
    torch.manual_seed(args.seed)  # the same LoRA init as ragtune's (which seeds the same way)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=args.rank,
            lora_alpha=2 * args.rank,
            lora_dropout=args.dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        ),
    )
    rows = encoded_rows(args, tokenizer)
    name = "baseline_bf16" if bf16 else "baseline_fp32"
    out = Path(args.out) / name
    shutil.rmtree(out, ignore_errors=True)  # a repeat starts clean, as the first run did
    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        bf16=bf16,
        use_cpu=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_steps=max(1, args.steps // 4),
        include_num_input_tokens_seen="non_padding",
        seed=args.seed,
    )
    trainer = Trainer(
        model=peft_model,
        args=targs,
        train_dataset=rows,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
    )
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    peft_model.save_pretrained(str(out / "adapter"))
    tokens = int(trainer.state.num_input_tokens_seen)
    return {
        "tokens": tokens,
        "wall_s": round(wall, 1),
        "tokens_per_s": round(tokens / wall, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def matmul_params(spec: str) -> tuple[int, int]:
    """(N, vocabulary projection size). N: parameters that take part in matmuls, all but an
    untied input embedding (a lookup); the N of "4*N FLOPs per token". The model is built on
    the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ragtune.models import resolve

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(resolve(spec)))
    n = sum(p.numel() for p in model.parameters())  # a tied matrix is counted once
    inp, outp = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    return (n if inp is outp else n - inp.numel()), outp.numel()


def part_ragtune(args: argparse.Namespace, checkpointing: bool = False) -> dict[str, Any]:
    from ragtune.runtime import RuntimeSection
    from ragtune.train import stage as train
    from ragtune.train.config import LoraSection, TrainConfig

    out = Path(args.out) / ("ragtune_ckpt" if checkpointing else "ragtune")
    shutil.rmtree(out, ignore_errors=True)  # no checkpoints left from an earlier run
    result = train.run(
        TrainConfig(
            data=str(Path(args.out) / "data" / "train.jsonl"),
            model=args.model,
            out=str(out),
            gradient_checkpointing=checkpointing,
            lora=LoraSection(r=args.rank, alpha=2 * args.rank, dropout=args.dropout),
            lr=args.lr,
            # the baseline's Trainer defaults, so held-out F1 compares the speed paths alone
            scheduler="linear",
            warmup=0,
            max_steps=args.steps,
            batch_size=args.batch_size,
            grad_accum=1,
            max_length=args.max_length,
            eval_fraction=0.0,
            seed=args.seed,
            runtime=RuntimeSection(threads=args.threads),
        )
    )
    m = result.metrics
    return {
        "tokens": m["tokens_seen"],
        "wall_s": m["wall_s"],
        "tokens_per_s": m["tokens_per_s"],
        "peak_rss_mb": m["peak_rss_mb"],
        "dtype": m["dtype"],  # what dtype=auto chose on this machine
        "dtype_probe": m.get("dtype_probe"),
    }


def part_eval(args: argparse.Namespace, adapter: str) -> dict[str, Any]:
    from ragtune.eval import stage as evaluate
    from ragtune.eval.stage import EvalConfig
    from ragtune.generation.load import GenerateConfig
    from ragtune.runtime import RuntimeSection

    name = Path(adapter).parent.name
    m = evaluate.run(
        EvalConfig(
            data=str(Path(args.out) / "data" / "eval.jsonl"),
            out=str(Path(args.out) / f"eval_{name}"),
            label=name,
            gen=GenerateConfig(
                model=args.model,
                adapter=adapter,
                max_new_tokens=32,
                batch_size=args.gen_batch,
            ),
            runtime=RuntimeSection(threads=args.threads),
        )
    )
    return {"f1": m["f1"], "exact_match": m["exact_match"], "n": m["n"]}


def gen_prompts(args: argparse.Namespace) -> list[Any]:
    from ragtune.data.importers import load_examples
    from ragtune.prompt.grounded import PromptConfig, build_messages

    exs = load_examples(str(Path(args.out) / "data" / "eval.jsonl"))[: args.gen_n]
    return [build_messages(ex.question, ex.contexts, PromptConfig()) for ex in exs]


def part_gen_ragtune(args: argparse.Namespace, adapter: str | None = None) -> dict[str, Any]:
    from ragtune import runtime
    from ragtune.eval.metrics import timing
    from ragtune.generation.load import GenerateConfig, load_generator

    rt = runtime.resolve(runtime.RuntimeSection(threads=args.threads))
    runtime.set_torch_threads(rt.threads)  # load_generator leaves it to the caller
    gen = load_generator(
        GenerateConfig(
            model=args.model,
            adapter=adapter,
            max_new_tokens=args.gen_tokens,
            batch_size=args.gen_batch,
        ),
        rt,
    )
    prompts = gen_prompts(args)
    gen.generate(prompts[:2])  # warm-up: first-call allocations are not throughput
    t0 = time.perf_counter()
    outs = gen.generate(prompts)
    wall = time.perf_counter() - t0
    new = sum(o.new_tokens for o in outs)
    # The eval report's own rate: each batch's prompt time counted once.
    rates = timing([dataclasses.asdict(o) for o in outs])
    return {
        "prompts": len(prompts),
        "new_tokens": new,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(new / wall, 1),
        "s_per_answer": round(wall / len(prompts), 3),
        "prompt_tokens_per_s": round(rates["prompt_tokens_per_s"] or 0, 1) or None,
        "batch_size": args.gen_batch,
        "peak_rss_mb": peak_rss_mb(),
    }


def gguf_file(spec: str) -> str:
    from ragtune.models import ALIASES, alias_path

    if spec in ALIASES:
        return str(alias_path(spec))
    if spec.endswith(".gguf"):
        return str(Path(spec).expanduser())
    raise SystemExit(f"{spec}: llama.cpp needs a .gguf model (or an alias that is one)")


def part_gen_llamacpp(args: argparse.Namespace, path: str) -> dict[str, Any]:
    from llama_cpp import Llama

    from ragtune.models import load_tokenizer
    from ragtune.prompt.grounded import render_prompt

    tokenizer = load_tokenizer(args.model)
    llm = Llama(
        model_path=path, n_ctx=4096, n_threads=args.threads, n_batch=512, verbose=False, seed=0
    )
    # The very prompt string ragtune renders, so both engines see the same tokens.
    prompts = [render_prompt(tokenizer, m) for m in gen_prompts(args)]
    llm.create_completion(prompts[0], max_tokens=4, temperature=0.0)  # warm-up
    t0 = time.perf_counter()
    new = 0
    for p in prompts:
        llm.reset()  # no prefix reuse between prompts: ragtune's path gets none either
        r = llm.create_completion(p, max_tokens=args.gen_tokens, temperature=0.0, stream=False)
        assert isinstance(r, dict)  # stream=False: one response, not an iterator
        new += int(r["usage"]["completion_tokens"])
    wall = time.perf_counter() - t0
    return {
        "file": Path(path).name,
        "prompts": len(prompts),
        "new_tokens": new,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(new / wall, 1),
        "s_per_answer": round(wall / len(prompts), 3),
        "batch_size": 1,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_part(args: argparse.Namespace) -> dict[str, Any]:
    from ragtune import allocator

    # Which malloc served the part: results.json merges runs, and the allocator moves speed.
    return {**dispatch(args), "allocator": allocator.loaded()}


def dispatch(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    part = args.part
    if part == "peak":
        return part_peak(args)
    if part.startswith("baseline"):
        return part_baseline(args, bf16=part == "baseline_bf16")
    if part == "ragtune":
        return part_ragtune(args)
    if part == "ragtune_ckpt":  # optional: memory with gradient_checkpointing=true
        return part_ragtune(args, checkpointing=True)
    if part == "eval_baseline":
        return part_eval(args, str(out / "baseline_bf16" / "adapter"))
    if part == "eval_ragtune":
        return part_eval(args, str(out / "ragtune" / "adapter"))
    if part == "gen_ragtune":
        return part_gen_ragtune(args)
    if part == "gen_tuned":
        return part_gen_ragtune(args, str(out / "ragtune" / "adapter"))
    if part == "gen_llamacpp":
        return part_gen_llamacpp(args, gguf_file(args.model))
    if part.startswith("gen_llamacpp:"):  # another GGUF of the same weights (--also-gguf)
        return part_gen_llamacpp(args, part.split(":", 1)[1])
    raise SystemExit(f"unknown part {part!r}; choose from {', '.join(PARTS)}")


# --- orchestration -----------------------------------------------------------------------------


def spawn(args: argparse.Namespace, part: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", part]
    for key, value in vars(args).items():
        if key not in ("part", "parts") and value is not None:
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    print(f"== {part}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"part {part} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}")
    result = dict(json.loads(lines[-1][len("RESULT ") :]))
    print(f"   {result}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return result


def also_gguf_parts(args: argparse.Namespace) -> list[str]:
    """One gen_llamacpp part per extra GGUF file given with --also-gguf."""
    return [f"gen_llamacpp:{f}" for f in args.also_gguf.split(",") if f]


def schedule(parts: list[str], repeats: int) -> list[str]:
    """The parts in order, with the training block run `repeats` times round-robin where it
    first appears: slow drifts in machine speed then hit every part alike."""
    training = [p for p in parts if p in TRAINING_PARTS]
    if not training:
        return parts
    first = parts.index(training[0])
    rest = [p for p in parts if p not in TRAINING_PARTS]
    return rest[:first] + training * repeats + rest[first:]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median tokens/s (the lower middle one for an even count), plus every
    run's tokens/s and the highest peak RSS."""
    ranked = sorted(runs, key=lambda r: r["tokens_per_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["runs_tokens_per_s"] = [r["tokens_per_s"] for r in runs]
    chosen["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return chosen


def allocators(r: dict[str, Any]) -> str:
    """The malloc every part ran on, or which ran on which when they differ (a results.json
    topped up across runs): such a table compares allocators as much as engines."""
    by: dict[str, list[str]] = {}
    for part, result in r.items():
        if isinstance(result, dict):
            by.setdefault(str(result.get("allocator", "not recorded")), []).append(part)
    if len(by) == 1:
        return next(iter(by))
    return "MIXED, not comparable: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in by.items())


def table(r: dict[str, Any], args: argparse.Namespace) -> str:
    n, vocab = matmul_params(args.model)
    base32, base16 = r["baseline_fp32"]["tokens_per_s"], r["baseline_bf16"]["tokens_per_s"]
    # The yardsticks of the machine it ran on: the faster plain baseline, and the matmul peak
    # of the dtype ragtune's probe chose (bf16 is not faster on every CPU).
    faster = max(base32, base16)
    used = r["ragtune"].get("dtype", "bfloat16")
    peak_key = "bf16_gflops" if used == "bfloat16" else "fp32_gflops"
    peak = r["peak"][peak_key]
    probe = r["ragtune"].get("dtype_probe") or {}
    lines = [
        f"model {args.model}, {n / 1e6:.1f}M matmul parameters; {args.steps} steps x batch "
        f"{args.batch_size}, LoRA r={args.rank} all-linear, dropout {args.dropout}; "
        f"{args.threads} threads",
        f"cpu: {probe.get('cpu', '?')}; measured peak: bf16 matmul {r['peak']['bf16_gflops']:.0f} "
        f"GFLOP/s, fp32 {r['peak']['fp32_gflops']:.0f}",
        f"ragtune's dtype probe chose {used} (GFLOP/s at the model's layer shapes: "
        f"{probe.get('gflops')}); % peak below is of {peak_key.split('_')[0]}",
        f"training tok/s: the median of {args.repeats} run(s) per part, run round-robin",
        "malloc: " + allocators(r),
        "",
        "% peak: tokens/s x 4N FLOPs / measured bf16 peak. ragtune projects onto the "
        "vocabulary at answer positions only, so it runs fewer FLOPs than 4N; the "
        "'w/o vocab' column counts 4(N - vocabulary projection) per token instead.",
        f"{'training':<34}{'tok/s':>8}{'x fp32 base':>12}{'x bf16 base':>12}{'x faster':>10}"
        f"{'% peak':>8}{'w/o vocab':>10}{'peak RSS MB':>12}{'held-out F1':>12}",
    ]
    f1 = {"baseline_bf16": r["eval_baseline"]["f1"], "ragtune": r["eval_ragtune"]["f1"]}
    rows = [
        ("baseline_fp32", "Trainer + peft, fp32 (defaults)"),
        ("baseline_bf16", "Trainer + peft, bf16=True"),
        ("ragtune", "ragtune train"),
        ("ragtune_ckpt", "ragtune, gradient_checkpointing"),
    ]
    for key, label in [row for row in rows if row[0] in r]:
        tps = r[key]["tokens_per_s"]
        runs = r[key].get("runs_tokens_per_s", [tps])
        frac = 100 * tps * 4 * n / 1e9 / peak
        frac_run = 100 * tps * 4 * (n - vocab) / 1e9 / peak
        f1s = f"{f1[key]:.1f}" if key in f1 else "-"
        lines.append(
            f"{label:<34}{tps:>8.0f}{tps / base32:>12.2f}{tps / base16:>12.2f}{tps / faster:>10.2f}"
            f"{frac:>7.0f}%{frac_run:>9.0f}%{r[key]['peak_rss_mb']:>12}{f1s:>12}"
            + (f"   runs: {', '.join(f'{x:.0f}' for x in runs)}" if len(runs) > 1 else "")
        )
    lines += [
        "",
        f"{'generation':<34}{'new tok/s':>10}{'s/answer':>10}{'batch':>7}{'peak RSS MB':>12}",
    ]
    llama_keys = ["gen_llamacpp", *also_gguf_parts(args)]
    own = {"gen_ragtune": "ragtune (transformers, bf16)", "gen_tuned": "ragtune, adapter merged"}
    for key in [*own, *llama_keys]:
        g = r[key]
        label = own.get(key) or f"llama.cpp {g['file']}"
        lines.append(
            f"{label:<34}{g['tokens_per_s']:>10.1f}{g['s_per_answer']:>10.3f}"
            f"{g['batch_size']:>7}{g['peak_rss_mb']:>12}"
        )
    best = max(llama_keys, key=lambda k: r[k]["tokens_per_s"])
    ratio = r["gen_ragtune"]["tokens_per_s"] / r[best]["tokens_per_s"]
    lines.append(
        f"ragtune batched / fastest llama.cpp single-stream ({r[best]['file']}): {ratio:.2f}x"
    )
    # Prompt processing is the like-for-like figure: a tuned model's answers are shorter.
    base, tuned = r["gen_ragtune"].get("prompt_tokens_per_s"), r["gen_tuned"]["prompt_tokens_per_s"]
    if base and tuned:  # None: this model's prompts took generate's padded prefill, untimed
        lines.append(
            f"adapter merged / base, prompt tokens/s: {tuned / base:.2f}x ({tuned:.0f} vs {base:.0f})"
        )
    # Unsloth trains on CUDA only; this benchmark has no GPU part yet, so say so plainly.
    lines.append("Unsloth QLoRA (GPU): not measured: no GPU lent")
    return "\n".join(lines)


def main() -> None:
    from ragtune import allocator

    # May re-execute the script on jemalloc, as the ragtune command does; the parts inherit it.
    allocator.ensure()
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="benchmarks/out/throughput")
    ap.add_argument("--data", default=str(SHARED_SQUAD))
    ap.add_argument("--steps", type=int, default=24, help="optimizer steps per training part")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--eval-n", type=int, default=48, help="held-out questions for F1")
    ap.add_argument("--gen-n", type=int, default=32, help="prompts for the generation parts")
    ap.add_argument("--gen-tokens", type=int, default=64, help="max new tokens per prompt")
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument(
        "--also-gguf",
        default="",
        help="comma list of more GGUF files of the same weights for llama.cpp (e.g. the f16 and "
        "q8_0 files `ragtune export --to gguf quant=f16,q8_0` writes from the base model)",
    )
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run each training part this many times, round-robin, and report the median",
    )
    ap.add_argument("--threads", type=int, default=0, help="0: the cores free at start")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--part", help="run one part (used by the orchestrator)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma list of parts to run")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error(f"--repeats: must be at least 1, got {args.repeats}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.part:
        print("RESULT " + json.dumps(run_part(args)), flush=True)
        return
    from ragtune import atomic, runtime

    if args.threads == 0:
        args.threads = runtime.free_cores(1.0)
    out = Path(args.out)
    prepare_data(args, out)
    results_path = out / "results.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    parts = [p for p in args.parts.split(",") if p]  # --parts "" re-renders the table
    parts += also_gguf_parts(args)
    runs: dict[str, list[dict[str, Any]]] = {}
    for part in schedule(parts, args.repeats):
        result = spawn(args, part)
        if part in TRAINING_PARTS:
            runs.setdefault(part, []).append(result)
            result = median_run(runs[part])
        results[part] = result
        atomic.write_json(results_path, results)  # a killed run keeps the parts it finished
    missing = [p for p in PARTS if p not in results]
    if missing:  # e.g. a results.json from before a part existed
        print(
            f"\nno table: {results_path} lacks {', '.join(missing)}; run --parts {','.join(missing)}"
        )
        return
    text = table(results, args)
    print("\n" + text)
    atomic.write_text(out / "results.txt", text + "\n")


if __name__ == "__main__":
    main()
