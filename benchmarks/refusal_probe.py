"""Does the model's hidden state know a question is unanswerable when its refusal start does
not? A linear probe, fitted on the training examples, against today's refusal score.

The calibrated refusal scores P(reply starts with the refusal sentence) at the start of the
answer. For English SQuAD 2.0 that score's AUC stays near 60% (RESULTS.md), and the answer's
own log-probabilities do no better (`refusal_features.py`). Slobodkin et al. (2023, "The
curious case of hallucinatory (un)answerability") found that a linear probe on an LLM's
hidden state at the answer start separates answerable from unanswerable questions much
better than the model's output does. This script measures that on our models:

1. One forward pass per prompt (question + its passages, fitted as eval fits them), keeping
   every layer's hidden state at the last prompt position (where the answer starts) and the
   refusal start's probability there.
2. A logistic regression per layer (scikit-learn, standardised features, L2 chosen by 5-fold
   cross-validation on the fitting set only), fitted on `--fit` (a run's training examples).
3. AUC (chance an unanswerable question scores above an answerable one) on each `--data`
   set, per layer, beside the refusal start's AUC on the same prompts.

    python benchmarks/refusal_probe.py --model <gguf> --adapter <run>/adapter \\
        --fit <out>/data/train-x.jsonl --data <out>/data/eval_en.jsonl --lang en
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ragtune import allocator, runtime
from ragtune.data.importers import load_examples
from ragtune.eval.answer import fit_questions
from ragtune.eval.calibrate import score_auc
from ragtune.generation.load import GenerateConfig, load_generator
from ragtune.prompt.grounded import PromptConfig, build_messages, refusal_for, render_prompt
from ragtune.text import language


@torch.inference_mode()
def features(gen: Any, path: str, lang: str | None, limit: int | None, max_length: int) -> dict:
    """Hidden states (examples, layers, dim) at the answer start, labels and refusal scores."""
    cfg = PromptConfig()
    exs = [e for e in load_examples(path) if lang is None or language(e.question) == lang]
    if limit:
        exs = exs[:limit]
    qs, _ = fit_questions(gen, exs, cfg, max_length, 32)
    states, scores = [], []
    t0 = time.perf_counter()
    for q in qs:
        prompt = render_prompt(gen.tokenizer, build_messages(q.question, q.passages, cfg))
        ids = gen.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        start = gen.refusal_start(refusal_for(q.question, cfg))
        out = gen.model(
            input_ids=torch.tensor([ids + start[:-1]], device=gen.device),
            output_hidden_states=True,
            logits_to_keep=len(start),
        )
        h = torch.stack([s[0, len(ids) - 1] for s in out.hidden_states]).float()
        states.append(h.cpu().numpy())
        lp = torch.log_softmax(out.logits[0].float(), -1)
        scores.append(float(np.exp(sum(float(lp[j, t]) for j, t in enumerate(start)))))
    print(f"{Path(path).name}: {len(qs)} prompts in {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "x": np.stack(states),
        "y": np.array([0 if e.answerable else 1 for e in exs]),
        "start": np.array(scores),
    }


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    rows = [{"answerable": not bool(u), "refusal_score": float(s)} for u, s in zip(y, score)]
    return score_auc(rows)


def main() -> None:
    allocator.ensure()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None, help="none: the base model's hidden states")
    ap.add_argument("--fit", required=True, help="examples to fit the probe on (JSONL)")
    ap.add_argument("--data", nargs="+", required=True, help="sets to measure AUC on")
    ap.add_argument("--lang", default=None, help="keep only questions in this language")
    ap.add_argument("--fit-limit", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument("--cache", default=None, help="save/load the features here (.npz prefix)")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rt = runtime.for_stage(runtime.RuntimeSection(), args.model)
    gen: Any = load_generator(GenerateConfig(model=args.model, adapter=args.adapter), rt)
    sets: dict[str, dict] = {}
    for name, path, limit in [("fit", args.fit, args.fit_limit)] + [
        (Path(p).stem, p, None) for p in args.data
    ]:
        cached = Path(f"{args.cache}-{name}.npz") if args.cache else None
        if cached is not None and cached.exists():
            sets[name] = dict(np.load(cached))
            continue
        sets[name] = features(gen, path, args.lang, limit, args.max_length)
        if cached is not None:
            np.savez(cached, **sets[name])
    fit = sets["fit"]
    n_layers = fit["x"].shape[1]
    print(
        f"fit: {len(fit['y'])} examples, {int(fit['y'].sum())} unanswerable; layers 0..{n_layers - 1}"
    )
    report: dict[str, Any] = {"refusal_start": {}, "probe": {}}
    for name, s in sets.items():
        report["refusal_start"][name] = auc(s["y"], s["start"])
    for layer in range(n_layers):
        clf = make_pipeline(
            StandardScaler(), LogisticRegressionCV(Cs=8, cv=5, scoring="roc_auc", max_iter=2000)
        )
        clf.fit(fit["x"][:, layer], fit["y"])
        report["probe"][layer] = {
            name: auc(s["y"], clf.predict_proba(s["x"][:, layer])[:, 1])
            for name, s in sets.items()
            if name != "fit"
        }
        print(
            f"layer {layer:2d}: "
            + ", ".join(f"{k} {v:.1f}" for k, v in report["probe"][layer].items() if v is not None),
            flush=True,
        )
    print(
        "refusal start AUC: "
        + ", ".join(f"{k} {v:.1f}" for k, v in report["refusal_start"].items() if v is not None)
    )
    if args.cache:
        Path(f"{args.cache}-report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
