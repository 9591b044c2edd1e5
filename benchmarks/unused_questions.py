"""The SQuAD 2.0 questions of a real_data.py run's training articles that its training file
does not hold: labelled questions the adapter never saw, from articles that are not held out,
for measuring what more fitting data buys a refusal probe (`refusal_probe.py --fit`), or for
calibrating a threshold on more English questions than the run's held-out split holds
(`ragtune calibrate RUN data=FILE`; `--sample` draws some, `--add` puts the split first).

    python benchmarks/unused_questions.py --train <out>/data/train-x.jsonl \\
        --out <out>/data/unused_en-x.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from more_calibration import draw, unused_questions  # benchmarks/: on sys.path
from real_data import SHARED, SQUAD_HELD_OUT, at_least, split

from ragtune.data.importers import import_data, load_examples
from ragtune.example import write_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", required=True, help="the run's training file (JSONL)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--squad", default=str(SHARED / "squad2_sample.json"))
    ap.add_argument("--seed", type=int, default=0, help="real_data.py's --seed")
    ap.add_argument(
        "--sample", type=at_least(0), default=None, help="keep N of them, drawn at random"
    )
    ap.add_argument("--add", default=None, help="examples written first (a run's heldout.jsonl)")
    args = ap.parse_args()
    examples = import_data(args.squad, skip_empty_questions=True).examples
    train_articles, _ = split(examples, SQUAD_HELD_OUT, args.seed)
    unused = unused_questions(train_articles, Path(args.train))
    print(
        f"{len(unused)} of {len(train_articles)} training-article questions unused "
        f"({sum(not e.answerable for e in unused)} unanswerable)"
    )
    if args.sample is not None:
        unused = draw(unused, args.sample, args.seed)
    first = load_examples(args.add) if args.add else []
    write_jsonl(Path(args.out), first + unused)
    print(
        f"{len(first) + len(unused)} examples ({len(first)} from {args.add}, "
        f"{sum(not e.answerable for e in unused)} of {len(unused)} unused unanswerable) "
        f"-> {args.out}"
    )


if __name__ == "__main__":
    main()
