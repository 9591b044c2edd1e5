"""Does the model's hidden state know a question is unanswerable when its refusal start does
not? A linear probe, fitted on the training examples, against today's refusal score.

The calibrated refusal scores P(reply starts with the refusal sentence) at the start of the
answer. For English SQuAD 2.0 that score's AUC stays at 57-71% (RESULTS.md), and the answer's
own log-probabilities do no better (`refusal_features.py`). Slobodkin et al. (2023, "The
curious case of hallucinatory (un)answerability") found that a linear probe on an LLM's
hidden state at the answer start separates answerable from unanswerable questions much
better than the model's output does. This script measures that on our models:

1. One forward pass per prompt (question + its passages, fitted as eval fits them), keeping
   every layer's hidden state at the last prompt position (where the answer starts) and the
   refusal start's probability there.
2. Per layer and L2 strength C (`--C`; 0.001, 0.01, 0.1), a logistic regression on the standardised
   state (scikit-learn), fitted on `--fit` (a run's training examples): its AUC under 5-fold
   cross-validation on the fitting set (folds split by document and stratified, as
   `eval.refusal_probe` chooses the layer), and, fitted on all of it, its AUC on each `--data`
   set (chance an unanswerable question scores above an answerable one), with the share of
   unanswerable questions refused at 10/15/20/25% false refusals.
3. The refusal start's AUC and the same shares on the same prompts, for comparison.
4. With `--concat 14,16,18 ...`: the same for a probe on those layers' states side by side.
5. With `--pool N`: the states averaged over the prompt's last N positions (the question's
   end and the chat template's) instead of the last one; with `--mlp ALPHA ...`: a small
   network beside the logistic regression, for whether the limit is the read-out's.
6. With `--ask` (English): the model is asked instead whether the passages hold the answer
   (yes or no, P(True)-style as in Kadavath et al. 2022), and the states are read where its
   reply starts; its own P(no) takes the refusal start's place. Does asking make the states
   (or the output) separate better than answering does?
7. With `--after-answer end|mean`: each question is answered first, as a threshold answers
   it (the refusal start blocked), and the states are read where the answer ends (or
   averaged over the answer start and the answer's tokens): does the model know more once
   it has written the span it would give? Answers run to the generator's default cap (48
   tokens; eval caps English at 32), and the count that reached it is printed.
   "refusal_start" is then the generator's own score (the run's probe, when its adapter has
   one).

Several `--fit` files are pooled (each file's features cached on its own), so a probe fitted
on the training examples can be set beside one fitted on more labelled questions the adapter
never saw, for how much more fitting data buys.

    python benchmarks/refusal_probe.py --model <gguf> --adapter <run>/adapter \\
        --fit <out>/data/train-x.jsonl --data <out>/data/eval_en.jsonl --lang en
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from real_data import at_least  # benchmarks/: the script's folder is on sys.path

from ragtune import allocator, atomic, runtime
from ragtune.data.importers import load_examples
from ragtune.eval.answer import fit_questions
from ragtune.eval.calibrate import score_auc
from ragtune.generation import abstain
from ragtune.generation.load import GenerateConfig, load_generator
from ragtune.prompt.grounded import (
    PromptConfig,
    build_messages,
    format_contexts,
    refusal_for,
    render_prompt,
)
from ragtune.text import language

ASK_SYSTEM = (
    "You check whether numbered context passages contain the answer to a question. "
    "Reply with one word: yes or no."
)
ASK_QUESTION = "Does the context contain the answer to this question? Reply yes or no."


def ask_messages(question: str, passages: Sequence[str]) -> list[dict[str, str]]:
    """The yes/no question `--ask` puts to the model about a question and its passages."""
    user = f"Context:\n{format_contexts(passages)}\n\nQuestion: {question.strip()}"
    return [
        {"role": "system", "content": ASK_SYSTEM},
        {"role": "user", "content": f"{user}\n\n{ASK_QUESTION}"},
    ]


def first_tokens(tokenizer: Any, words: tuple[str, ...]) -> list[int]:
    """The token of each spelling of a reply word (with and without a leading space) that
    is one token: a first piece of a longer one would also begin other replies."""
    ids = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    out = sorted({i[0] for i in ids if len(i) == 1})
    if not out:
        raise SystemExit(f"--ask: no spelling of {words[0]!r} is one token of this tokenizer")
    return out


@torch.inference_mode()
def features(
    gen: Any,
    path: str,
    lang: str | None,
    limit: int | None,
    max_length: int,
    pool: int = 1,
    ask: bool = False,
) -> dict:
    """Hidden states (examples, layers, dim) at the answer start (the mean of the prompt's
    last `pool` positions: the question's end and the chat template's), labels and refusal
    scores (with `ask`: at the start of the yes/no reply, and P(no) among yes and no)."""
    cfg = PromptConfig()
    exs = examples_in(path, lang)
    if limit:
        exs = exs[:limit]
    # Passages fitted to the answering prompt either way, so --ask reads the same ones (its
    # instruction and question together are shorter than the grounded instruction).
    qs, _ = fit_questions(gen, exs, cfg, max_length, 32)
    states, scores = [], []
    yes = first_tokens(gen.tokenizer, ("Yes", "yes", " Yes", " yes"))
    no = first_tokens(gen.tokenizer, ("No", "no", " No", " no"))
    t0 = time.perf_counter()
    for q in qs:
        messages = (
            ask_messages(q.question, q.passages)
            if ask
            else build_messages(q.question, q.passages, cfg)
        )
        ids = gen.tokenizer(render_prompt(gen.tokenizer, messages), add_special_tokens=False)
        ids = ids["input_ids"]
        # Answering: the refusal sentence's first tokens are fed to score all of them at once.
        start = None if ask else gen.refusal_start(refusal_for(q.question, cfg))
        fed = [] if start is None else list(start.ids)
        out = gen.model(
            input_ids=torch.tensor([ids + fed[:-1]], device=gen.device),
            output_hidden_states=True,
            logits_to_keep=max(1, len(fed)),
        )
        last = slice(max(0, len(ids) - pool), len(ids))
        h = torch.stack([s[0, last].float().mean(0) for s in out.hidden_states])
        states.append(h.cpu().numpy())
        if start is None:
            p = torch.softmax(out.logits[0, -1].float(), -1)
            p_no, p_yes = float(p[no].sum()), float(p[yes].sum())
            scores.append(p_no / max(p_no + p_yes, 1e-12))
        else:
            lp = torch.log_softmax(out.logits[0].float(), -1)
            scores.append(abstain.start_score(start, lambda j, t: float(lp[j, t])))  # noqa: B023
    print(f"{Path(path).name}: {len(qs)} prompts in {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "x": np.stack(states),
        "y": np.array([0 if e.answerable else 1 for e in exs]),
        "start": np.array(scores),
    }


@torch.inference_mode()
def answer_features(
    gen: Any, path: str, lang: str | None, limit: int | None, max_length: int
) -> dict:
    """`--after-answer`: each question answered as a threshold answers it (greedy, the refusal
    start blocked, through the generator's own path), then prompt and answer fed once more to
    read every layer's states where the answer ends (the position that predicts its end:
    "x") and averaged over the answer start and the answer's tokens ("x_mean"). "start" is
    the generator's own refusal score (its probe's when the adapter has one). The answer is
    encoded again from its text (special tokens dropped, stripped), as a client would send it
    back; its ids may differ from the generated ones at a piece or two."""
    cfg = PromptConfig()
    exs = examples_in(path, lang)
    if limit:
        exs = exs[:limit]
    qs, _ = fit_questions(gen, exs, cfg, max_length, 32)
    t0 = time.perf_counter()
    batch = [build_messages(q.question, q.passages, cfg) for q in qs]
    gens = gen.generate(batch, [refusal_for(q.question, cfg) for q in qs])
    capped = sum(g.new_tokens >= gen.max_new_tokens for g in gens)
    print(
        f"{Path(path).name}: {len(qs)} answers in {time.perf_counter() - t0:.0f} s "
        f"({capped} cut at {gen.max_new_tokens} tokens: their states are read where the cap cut)",
        flush=True,
    )
    ends, means = [], []
    for m, g in zip(batch, gens, strict=True):
        prompt = gen.tokenizer(render_prompt(gen.tokenizer, m), add_special_tokens=False)
        ids = prompt["input_ids"]
        answer = gen.tokenizer(g.text, add_special_tokens=False)["input_ids"] if g.text else []
        out = gen.model(
            input_ids=torch.tensor([ids + answer], device=gen.device),
            output_hidden_states=True,
            logits_to_keep=1,
        )
        span = slice(len(ids) - 1, len(ids) + len(answer))  # the answer start, then its tokens
        ends.append(torch.stack([s[0, -1].float() for s in out.hidden_states]).cpu().numpy())
        means.append(
            torch.stack([s[0, span].float().mean(0) for s in out.hidden_states]).cpu().numpy()
        )
    print(f"{Path(path).name}: answers and states in {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "x": np.stack(ends),
        "x_mean": np.stack(means),
        "y": np.array([0 if e.answerable else 1 for e in exs]),
        "start": np.array([g.refusal_score for g in gens], dtype=float),
        "answers": np.array([g.text for g in gens]),
    }


def examples_in(path: str, lang: str | None) -> list:
    """The examples of `path` this script reads: those in `lang` (all when None)."""
    return [e for e in load_examples(path) if lang is None or language(e.question) == lang]


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    rows = [{"answerable": not bool(u), "refusal_score": float(s)} for u, s in zip(y, score)]
    return score_auc(rows)


def refused_at(y: np.ndarray, score: np.ndarray) -> str:
    """Unanswerable questions refused at the best threshold under each false-refusal cap."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    return " ".join(f"{100 * max(tpr[fpr <= c + 1e-9]):.0f}" for c in (0.10, 0.15, 0.20, 0.25))


def main() -> None:
    allocator.ensure()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", default=None, help="none: the base model's hidden states")
    ap.add_argument(
        "--fit", nargs="+", required=True, help="examples to fit the probe on (JSONL; pooled)"
    )
    ap.add_argument("--data", nargs="+", required=True, help="sets to measure AUC on")
    ap.add_argument("--lang", default=None, help="keep only questions in this language")
    ap.add_argument("--fit-limit", type=int, default=None, help="first N of each --fit file")
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument(
        "--pool",
        type=at_least(1),
        default=1,
        help="probe the mean state of the prompt's last N positions (1: the answer start only)",
    )
    ap.add_argument(
        "--ask",
        action="store_true",
        help="ask the model whether the passages hold the answer (yes/no) and read the states "
        "where its reply starts; P(no) replaces the refusal start (English only)",
    )
    ap.add_argument(
        "--after-answer",
        choices=["end", "mean"],
        default=None,
        help="answer each question as a threshold does (refusal start blocked) and read the "
        "states where the answer ends, or their mean over the answer: does the model know more "
        "once it has written its answer?",
    )
    ap.add_argument("--cache", default=None, help="save/load the features here (.npz prefix)")
    ap.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1], dest="cs")
    ap.add_argument(
        "--mlp",
        type=float,
        nargs="*",
        default=[],
        help="also a one-hidden-layer network (256 units) per L2 strength given: is the "
        "separation a linear read-out's limit?",
    )
    ap.add_argument(
        "--concat", nargs="*", default=[], help="layer sets probed together, e.g. 14,16,18"
    )
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    gen: Any = None
    if args.ask and args.lang != "en":
        raise SystemExit("--ask: the yes/no question is English; add --lang en")
    # In cache and report names: features read another way are never mixed up.
    pooled = (f"-pool{args.pool}" if args.pool > 1 else "") + ("-ask" if args.ask else "")
    if args.after_answer and (args.ask or args.pool > 1):
        raise SystemExit("--after-answer reads the answer's states: no --ask or --pool with it")
    # One cache holds both readings of the answer; the report names the one probed.
    cache_suffix = pooled + ("-answer" if args.after_answer else "")
    pooled += f"-answer-{args.after_answer}" if args.after_answer else ""

    def load(path: str, limit: int | None) -> dict:
        nonlocal gen
        # Named by file and first-N limit; the language filter is stored and checked, since
        # the fitting groups are rebuilt from the file with the same filter.
        name = Path(path).stem + (f"-first{limit}" if limit else "") + cache_suffix
        cached = Path(f"{args.cache}-{name}.npz") if args.cache else None
        if cached is not None and cached.exists():
            feats = dict(np.load(cached))
            was = str(feats.pop("lang", args.lang or ""))  # caches before it was stored: as asked
            if was != (args.lang or ""):
                raise SystemExit(
                    f"{cached}: features of --lang {was or 'all'}; use another --cache"
                )
            return picked(feats)
        if gen is None:
            rt = runtime.for_stage(runtime.RuntimeSection(), args.model)
            gen = load_generator(GenerateConfig(model=args.model, adapter=args.adapter), rt)
        if args.after_answer:
            feats = answer_features(gen, path, args.lang, limit, args.max_length)
        else:
            feats = features(gen, path, args.lang, limit, args.max_length, args.pool, args.ask)
        if cached is not None:
            np.savez(cached, **feats, lang=np.array(args.lang or ""))
        return picked(feats)

    def picked(feats: dict) -> dict:
        """The states `--after-answer` asks for under "x" (the answer's end is stored there)."""
        if args.after_answer == "mean":
            feats["x"] = feats["x_mean"]
        return feats

    fits = [load(p, args.fit_limit) for p in args.fit]
    fit_exs = [examples_in(p, args.lang)[: len(f["y"])] for p, f in zip(args.fit, fits)]
    for p, f, exs in zip(args.fit, fits, fit_exs):  # a cache made under another filter
        if len(exs) != len(f["y"]):
            raise SystemExit(f"{p}: its cached features do not match --lang; use another --cache")
    # Folds split by document across every fitting file (a file's examples may share one).
    groups = [e.group or e.id for exs in fit_exs for e in exs]
    fit = {k: np.concatenate([f[k] for f in fits]) for k in ("x", "y", "start")}
    sets: dict[str, dict] = {"fit": fit} | {Path(p).stem: load(p, None) for p in args.data}
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    n_layers = fit["x"].shape[1]
    print(
        f"fit: {len(fit['y'])} examples ({', '.join(Path(p).name for p in args.fit)}), "
        f"{int(fit['y'].sum())} unanswerable; layers 0..{n_layers - 1}"
    )
    print("refused at false refusals <= 10/15/20/25%")
    # The model's own score: the refusal start, or with --ask its P(no).
    own = "p_no" if args.ask else "refusal_start"
    report: dict[str, Any] = {"fit": args.fit, own: {}, "probe": {}}
    for name, s in sets.items():
        report[own][name] = auc(s["y"], s["start"])
        print(
            f"{own}: {name} AUC {report[own][name]:.1f}, refused {refused_at(s['y'], s['start'])}"
        )
    layer_sets = [[layer] for layer in range(n_layers // 3, n_layers, 2)] + [
        [int(i) for i in c.split(",")] for c in args.concat
    ]
    readouts: list[tuple[str, Any]] = [
        (f"C={c}", lambda c=c: LogisticRegression(C=c, max_iter=3000)) for c in args.cs
    ] + [
        # One hidden layer, L2 strength `alpha`, stopped on a tenth of the fitting set.
        (f"mlp alpha={a}", lambda a=a: MLPClassifier((256,), alpha=a, early_stopping=True,
                                                     random_state=0, max_iter=500))
        for a in args.mlp
    ]  # fmt: skip
    for c, readout in readouts:
        for layers in layer_sets:

            def rows(s: dict, layers: list[int] = layers) -> np.ndarray:
                return s["x"][:, layers].reshape(len(s["y"]), -1)

            clf = make_pipeline(StandardScaler(), readout())
            cv = (
                100
                * cross_val_score(
                    clf, rows(fit), fit["y"], groups=groups, cv=folds, scoring="roc_auc"
                ).mean()
            )
            clf.fit(rows(fit), fit["y"])
            row: dict[str, Any] = {"cv": round(float(cv), 1)}
            text = []
            for name, s in sets.items():
                if name == "fit":
                    continue
                score = clf.predict_proba(rows(s))[:, 1]
                row[name] = auc(s["y"], score)
                text.append(f"{name} AUC {row[name]:.1f}, refused {refused_at(s['y'], score)}")
            label = ",".join(map(str, layers))
            report["probe"][f"{c} layer={label}"] = row
            print(f"{c} layer {label:>2s}: cv {cv:.1f}; " + "; ".join(text), flush=True)
    if args.cache:
        fitted = "+".join(Path(p).stem for p in args.fit) + pooled + ("-mlp" if args.mlp else "")
        atomic.write_json(Path(f"{args.cache}-report-{fitted}.json"), report)


if __name__ == "__main__":
    main()
