"""Export benchmark: each export type of a tuned adapter against the transformers model.

Runs `ragtune export` (merged bf16, GGUF at each --quant, LoRA GGUF on the f16 base) with
verification on the first --n questions of --data, then answers the same questions with the
merged bf16 folder in transformers and, when the base model is itself a GGUF (the
smollm2-135m alias, a .gguf path), with that original file plus the exported LoRA GGUF.
Per export type it reports: file size, llama.cpp decode and prompt tokens/s (one prompt at a
time, greedy), exact-answer agreement with the fp32 transformers model (SQuAD-normalised
answers), and token F1 against gold for the file and for transformers.

    python benchmarks/export.py --model smollm2-135m --adapter benchmarks/out/smollm2/train \
        --data benchmarks/out/smollm2/data/eval_en.jsonl --n 100 --out benchmarks/out/export-smollm2
    python benchmarks/export.py --model ~/.cache/ragtune/models/qwen2.5-coder-0.5b-instruct.gguf \
        --adapter benchmarks/out/qwen05-v2/train --data benchmarks/out/qwen05-v2/data/eval_en.jsonl \
        --n 100 --out benchmarks/out/export-qwen05

Writes --out/export/ (the export itself) and --out/results.json; results go in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ragtune import allocator, atomic, runtime
from ragtune.data.importers import load_examples
from ragtune.eval import metrics
from ragtune.export.stage import ExportConfig, run
from ragtune.export.verify import answers_agree
from ragtune.generation.load import GenerateConfig, load_generator
from ragtune.models import ALIASES, alias_path
from ragtune.prompt.grounded import PromptConfig, build_messages
from ragtune.runtime import RuntimeSection


def score(examples: list[Any], answers: list[str], reference: list[str]) -> dict[str, Any]:
    """Agreement with the transformers answers and F1 vs gold, as export verification does."""
    prompt = PromptConfig()
    same = sum(answers_agree(e, a, b, prompt) for e, a, b in zip(examples, answers, reference))
    scores, _ = metrics.evaluate(examples, answers, semantic=False)
    return {"agreement": 100.0 * same / len(answers), "f1": scores["f1"]}


def original_gguf(spec: str) -> Path | None:
    if spec in ALIASES:
        return alias_path(spec)
    return Path(spec).expanduser() if spec.endswith(".gguf") else None


def main() -> None:
    allocator.ensure()  # may re-execute the script on jemalloc, as the ragtune command does
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--adapter", required=True, help="ragtune train run folder (or adapter/)")
    ap.add_argument("--data", required=True, help="held-out QA file (SQuAD questions)")
    ap.add_argument("--n", type=int, default=100, help="questions answered by every engine")
    ap.add_argument("--quant", default="f16,q8_0,q4_k_m", help="GGUF types, comma list")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=runtime.threads_arg, default="auto", help="a number, or auto")
    ap.add_argument("--out", default="benchmarks/out/export")
    args = ap.parse_args()

    out = Path(args.out)
    t0 = time.perf_counter()
    result = run(
        ExportConfig(
            model=args.model,
            adapter=args.adapter,
            to=["merged", "gguf", "lora"],
            quant=args.quant.split(","),
            out=str(out / "export"),
            data=args.data,
            verify_n=args.n,
            max_new_tokens=args.max_new_tokens,
            runtime=RuntimeSection(threads=args.threads),
        )
    )
    export_s = time.perf_counter() - t0
    summary = json.loads((result.out / "export.json").read_text(encoding="utf-8"))
    reference = summary["reference"]["answers"]
    examples = load_examples(args.data)[: args.n]
    messages = [build_messages(e.question, e.contexts, PromptConfig()) for e in examples]
    size = {Path(p).name: b for p, b in result.files.items()}
    rows: list[dict[str, Any]] = []
    for r in result.verification:
        if r["engine"] != "llama.cpp":
            continue
        files = [f.strip() for f in r["file"].split("+")]
        rows.append(
            {
                "export": "lora" if len(files) > 1 else f"gguf {files[0].split('-')[-1][:-5]}",
                "file": r["file"],
                "size_mb": sum(size[f] for f in files) / 1e6,
                **{k: r.get(k) for k in ("decode_tokens_per_s", "prompt_tokens_per_s")},
                **{k: r.get(k) for k in ("agreement", "f1", "f1_transformers", "logit_cosine")},
            }
        )

    # The merged bf16 folder in transformers, one prompt at a time like llama.cpp.
    rt = runtime.resolve(RuntimeSection(threads=args.threads))
    runtime.set_torch_threads(rt.threads)  # load_generator leaves it to the caller
    gen = load_generator(
        GenerateConfig(
            model=str(result.out / "merged"),
            max_new_tokens=args.max_new_tokens,
            batch_size=1,
        ),
        rt,
    )
    gens = gen.generate(messages)
    wall = sum(g.latency_s for g in gens)
    rows.append(
        {
            "export": "merged bf16 (transformers)",
            "file": "merged/",
            "size_mb": sum(b for p, b in result.files.items() if p.startswith("merged/")) / 1e6,
            "decode_tokens_per_s": None,
            "prompt_tokens_per_s": None,
            "end_to_end_tokens_per_s": sum(g.new_tokens for g in gens) / wall if wall else None,
            **score(examples, [g.text for g in gens], reference),
        }
    )

    # The LoRA GGUF on the user's original (quantized) base GGUF, if there is one.
    base_gguf = original_gguf(args.model)
    if base_gguf is not None:
        from ragtune.generation.llamacpp import LlamaCppGenerator

        threads = runtime.thread_count(args.threads)
        lora = result.out / "gguf" / "adapter-lora.gguf"
        with LlamaCppGenerator(
            base_gguf, args.max_new_tokens, lora_path=lora, threads=threads
        ) as g:
            answers = [x.text for x in g.generate(messages)]
            s = g.stats
        rows.append(
            {
                "export": "lora on the original base GGUF",
                "file": f"{base_gguf.name} + adapter-lora.gguf",
                "size_mb": (base_gguf.stat().st_size + size["adapter-lora.gguf"]) / 1e6,
                "decode_tokens_per_s": s["decode_tokens"] / s["decode_s"]
                if s["decode_s"]
                else None,
                "prompt_tokens_per_s": s["prompt_tokens"] / s["prompt_s"]
                if s["prompt_s"]
                else None,
                **score(examples, answers, reference),
            }
        )

    f1_hf = next((r["f1_transformers"] for r in rows if r.get("f1_transformers") is not None), None)
    print(f"\n{args.model} + {args.adapter}: {len(examples)} questions from {args.data}")
    print(f"transformers fp32 reference F1 {f1_hf:.1f}; export took {export_s:.0f} s\n")
    print(
        f"{'export':<32}{'size MB':>9}{'decode tok/s':>14}{'prompt tok/s':>14}"
        f"{'agree %':>9}{'F1':>7}{'F1 hf':>7}"
    )
    for r in rows:

        def cell(key: str, width: int, fmt: str = ".1f", row: dict[str, Any] = r) -> str:
            v = row.get(key)
            return f"{v:{width}{fmt}}" if isinstance(v, (int, float)) else f"{'-':>{width}}"

        print(
            f"{r['export']:<32}{cell('size_mb', 9)}{cell('decode_tokens_per_s', 14)}"
            f"{cell('prompt_tokens_per_s', 14)}{cell('agreement', 9)}{cell('f1', 7)}"
            f"{f1_hf if f1_hf is not None else float('nan'):7.1f}"
        )
    e2e = next(r["end_to_end_tokens_per_s"] for r in rows if "end_to_end_tokens_per_s" in r)
    print(
        f"\nmerged bf16 in transformers: {e2e:.1f} tokens/s end to end (prompt + decode, batch 1)"
    )
    for file, note in (summary.get("quantization_notes") or {}).items():
        print(f"{file}: {note}")
    atomic.write_json(
        out / "results.json",
        {
            "args": vars(args),
            "export_s": round(export_s, 1),
            "quantization_notes": summary.get("quantization_notes"),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
