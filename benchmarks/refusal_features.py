"""Which refusal score separates unanswerable from answerable questions best? AUC per candidate.

The calibrated refusal (`generation.abstain`) scores P(reply starts with the refusal
sentence). SQuAD 2.0 systems instead compare the no-answer score with the best answer's
score. This script measures, on a tuned adapter and held-out questions, the AUC (chance an
unanswerable question scores above an answerable one) of several candidates:

- start:       P(refusal start), today's score
- ans_first:   -log P(first token of the answer decoded with the refusal suppressed)
- ans_mean:    -mean log P of that answer's tokens and its end-of-turn token
- ans_min:     -min of the same
- ans_sum:     -sum of the same
- margin1:     log P(refusal start) - log P(answer's first token)
- margin:      log P(refusal start) - log P(answer's first token, and the one after it)

    python benchmarks/refusal_features.py --model <gguf> --adapter benchmarks/out/x/train-w05 \
        --data benchmarks/out/x/train-w05/heldout.jsonl benchmarks/out/x/data/eval_en.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from ragtune import allocator, runtime
from ragtune.data.importers import load_examples
from ragtune.eval.answer import fit_questions
from ragtune.eval.calibrate import score_auc
from ragtune.generation.abstain import Threshold
from ragtune.generation.grounded import generate_grounded
from ragtune.generation.load import GenerateConfig, load_generator
from ragtune.prompt.grounded import PromptConfig, build_messages, render_prompt
from ragtune.prompt.refusal import is_refusal
from ragtune.text import language

FEATURES = ("start", "ans_first", "ans_mean", "ans_min", "ans_sum", "margin1", "margin")


@torch.inference_mode()
def answer_logprobs(gen: Any, prompts: list[str], answers: list[str]) -> list[list[float]]:
    """log P of each answer token and the end-of-turn token, teacher-forced after its prompt."""
    tok, model = gen.tokenizer, gen.model
    eos = gen.stop_ids[0] if len(gen.stop_ids) == 1 else tok.convert_tokens_to_ids("<|im_end|>")
    out = []
    for p, a in zip(prompts, answers, strict=True):
        pids = tok(p, add_special_tokens=False)["input_ids"]
        aids = tok(a, add_special_tokens=False)["input_ids"] + [eos]
        ids = torch.tensor([pids + aids], device=gen.device)
        logits = model(input_ids=ids, logits_to_keep=len(aids) + 1).logits[0, :-1].float()
        lp = torch.log_softmax(logits, -1)
        out.append([float(lp[j, t]) for j, t in enumerate(aids)])
    return out


def main() -> None:
    allocator.ensure()  # may re-execute the script on jemalloc, as the ragtune command does
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", required=True)
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument("--out", default=None, help="write per-question features here (JSONL)")
    args = ap.parse_args()
    rt = runtime.for_stage(runtime.RuntimeSection(), args.model)
    gen: Any = load_generator(GenerateConfig(model=args.model, adapter=args.adapter), rt)
    cfg = PromptConfig()
    dump: list[dict[str, Any]] = []
    for path in args.data:
        exs = load_examples(path)
        qs, _ = fit_questions(gen, exs, cfg, args.max_length, 32)
        items = [(q.question, q.passages) for q in qs]
        gens = generate_grounded(gen, items, cfg, threshold=Threshold(1.0))  # score, refuse none
        prompts = [
            render_prompt(gen.tokenizer, build_messages(q.question, q.passages, cfg)) for q in qs
        ]
        lps = answer_logprobs(gen, prompts, [g.text for g in gens])
        rows: list[dict[str, Any]] = []
        for e, g, lp in zip(exs, gens, lps, strict=True):
            log_start = math.log(max(g.refusal_score or 0.0, 1e-12))  # a 0 score: a floor
            f = {
                "start": g.refusal_score,
                "ans_first": -lp[0],
                "ans_mean": -sum(lp) / len(lp),
                "ans_min": -min(lp),
                "ans_sum": -sum(lp),
                "margin1": log_start - lp[0],
                "margin": log_start - sum(lp[:2]),
            }
            rows.append(
                {
                    "id": e.id,
                    "lang": language(e.question),
                    "answerable": e.answerable,
                    "answer": g.text,
                    "said_no": is_refusal(g.text, cfg),
                    **f,
                }
            )
        dump += rows
        for lang in sorted({str(r["lang"]) for r in rows}):
            part = [r for r in rows if r["lang"] == lang]
            aucs = []
            for name in FEATURES:
                scored = [{"answerable": r["answerable"], "refusal_score": r[name]} for r in part]
                auc = score_auc(scored)
                aucs.append(f"{name} {auc:.1f}" if auc is not None else f"{name} n/a")
            print(f"{Path(path).name} [{lang}, {len(part)} q]: " + ", ".join(aucs))
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dump))


if __name__ == "__main__":
    main()
