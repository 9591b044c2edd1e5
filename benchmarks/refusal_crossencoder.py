"""Can a passage reranker stand in for, or add to, the model's own refusal score? The AUC of
an MS MARCO cross-encoder's (question, passage) relevance as a refusal score on held-out
questions, beside the refusal scores a finished calibrated eval saved, and of the two
combined (the mean of their ranks).

SQuAD 2.0's unanswerable questions were written against their passage to look answerable,
so relevance alone should separate them poorly; this measures how poorly, and whether it
carries anything the probe does not.

    python benchmarks/refusal_crossencoder.py --data benchmarks/out/qwen05-v4/data/eval_en.jsonl \\
        --eval benchmarks/out/qwen05-v4/tuned-n2000-w05-probe-calibrated_en-cal576-fr10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from refusal_probe import auc, refused_at  # benchmarks/: the script's folder is on sys.path

from ragtune import runs
from ragtune.data.importers import load_examples
from ragtune.rag.rerank import load_reranker


def main() -> None:
    from scipy.stats import rankdata

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="the eval's questions (JSONL)")
    ap.add_argument("--eval", required=True, help="a finished eval with refusal scores")
    ap.add_argument("--reranker", default="default", help="rag.rerank spec (default: MS MARCO)")
    args = ap.parse_args()
    examples = load_examples(args.data)
    saved = {}
    for line in (Path(args.eval) / runs.PREDICTIONS).open(encoding="utf-8"):
        row = json.loads(line)
        saved[row["id"]] = row.get("refusal_score")
    missing = [e.id for e in examples if saved.get(e.id) is None]
    if missing:
        raise SystemExit(
            f"{args.eval}: no refusal score for {len(missing)} questions ({missing[0]})"
        )
    reranker = load_reranker(args.reranker, threads=2)
    y = np.array([0 if e.answerable else 1 for e in examples])
    # Less relevant -> more likely unanswerable: the negated score ranks like a refusal score.
    relevance = -np.array(
        [reranker.score(e.question, ["\n".join(e.contexts)])[0] for e in examples]
    )
    own = np.array([saved[e.id] for e in examples])
    print(
        f"{len(examples)} questions, {int(y.sum())} unanswerable; refused at <= 10/15/20/25% false refusals"
    )
    for name, score in (
        (f"cross-encoder ({reranker.name})", relevance),
        ("the eval's refusal score", own),
        ("both (mean rank)", rankdata(relevance) + rankdata(own)),
    ):
        print(f"{name}: AUC {auc(y, score):.1f}, refused {refused_at(y, score)}")


if __name__ == "__main__":
    main()
