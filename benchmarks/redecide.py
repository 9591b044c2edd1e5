"""Score finished evals of a tuned model again at its current calibration, without
generating again.

An eval with a refusal threshold saves, for every question, the refusal score and the answer
decoded with the refusal start suppressed (`generation.abstain`): one decoding pass serves
every threshold. After `ragtune calibrate RUN` has chosen new thresholds (another target, or
one per language), this seeds each eval's resumable answers (`predictions.partial.jsonl`)
in a new folder `<eval>-<suffix>` from its predictions and runs `ragtune eval` there with
`gen.refusal_threshold=auto` (or `--threshold N`): the same answers, decided at the new
thresholds and scored. `--threshold keep` scores any finished eval (a base or greedy one
too) again at its own setting: the same answers and decisions under the metrics as they are
now, after a change to how they are computed.
The model is loaded only to fit prompts as the eval did; no answer is generated (and no
latency is measured: `latency_questions=0`).

    ragtune calibrate benchmarks/out/qwen05-v4/train-n2000-w05-e2
    python benchmarks/redecide.py benchmarks/out/qwen05-v4/tuned-n2000-w05-e2-calibrated_{en,zh,all_zh} \
        --suffix perlang
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from ragtune import allocator, atomic, runs, runtime
from ragtune.config import load_config
from ragtune.eval import stage as evaluate
from ragtune.generation.base import Generation
from ragtune.generation.load import load_generator, probe_path, refusal_threshold

# What `Generation` keeps of an answer as the engine returned it, besides its text, which
# `abstain.decide` replaced by the refusal where the threshold said refuse.
KEPT = tuple(f.name for f in dataclasses.fields(Generation) if f.name not in ("text", "unrefused"))


def seed_partial(eval_dir: Path, out: Path, decided: bool = True) -> int:
    """Write `out`'s resumable answers from `eval_dir`'s predictions: the answer as generated
    (the suppressed one where a score was taken), undecided. `decided=False`: for an eval
    without a threshold, whose answers are its predictions as they stand. Returns how many."""
    rows = [json.loads(line) for line in (eval_dir / runs.PREDICTIONS).open(encoding="utf-8")]
    unscored = [r["id"] for r in rows if r.get("refusal_score") is None]
    if not decided:
        rows = [{**r, "unrefused": r["prediction"]} for r in rows]
    elif unscored:
        raise SystemExit(
            f"{eval_dir}: {len(unscored)} answers have no refusal score (first: {unscored[0]}); "
            "only an eval run with a refusal threshold can be decided again"
        )
    lines = [
        json.dumps(
            {
                "id": r["id"],
                "text": r["unrefused"],
                "unrefused": None,
                **{k: r.get(k) for k in KEPT},
            },
            ensure_ascii=False,
        )
        for r in rows
    ]
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / runs.PARTIAL_PREDICTIONS, "\n".join(lines) + "\n")
    return len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("evals", nargs="+", help="finished eval folders of one tuned model")
    ap.add_argument("--suffix", required=True, help="the new folders are <eval>-<suffix>")
    ap.add_argument(
        "--threshold",
        default="auto",
        help="auto (the run's calibration, per language where it has them), a number for "
        "every question (the pooled choice to compare per-language thresholds with), or keep "
        "(each eval's own: scored again under today's metrics)",
    )
    args = ap.parse_args()
    keep = args.threshold == "keep"
    threshold_arg: Any = (
        args.threshold if args.threshold in ("auto", "keep") else float(args.threshold)
    )
    generator, first = None, None
    for name in args.evals:
        eval_dir = Path(name)
        if runs.finished(eval_dir) is None:
            raise SystemExit(f"{eval_dir}: not a finished eval ({runs.EVAL_METRICS} missing)")
        cfg = load_config(evaluate.EvalConfig, eval_dir / runs.EVAL_CONFIG)
        if cfg.index:
            raise SystemExit(f"{eval_dir}: an end-to-end eval (index); only gold-passage evals")
        # Prompts are fitted with the first eval's model: every eval named must share it.
        model = (cfg.gen.model, cfg.gen.adapter, cfg.gen.backend, cfg.max_length)
        first = first or (eval_dir, model)
        if model != first[1]:
            raise SystemExit(
                f"{eval_dir}: model, adapter, backend, max_length {model} differ from "
                f"{first[0]}'s {first[1]}; decide one tuned model's evals at a time"
            )
        out = eval_dir.with_name(f"{eval_dir.name}-{args.suffix}")
        cfg = dataclasses.replace(
            cfg,
            out=str(out),
            label=f"{cfg.label} ({args.suffix})",
            latency_questions=0,
            gen=cfg.gen if keep else dataclasses.replace(cfg.gen, refusal_threshold=threshold_arg),
        )
        threshold = refusal_threshold(cfg.gen)
        ident = evaluate.identity(cfg, threshold)
        was = runs.recorded_identity(eval_dir, "eval")
        if not was:
            raise SystemExit(
                f"{eval_dir / runs.run_file('eval')}: missing or unreadable, so what the eval "
                "answered with is unknown; evaluate again instead"
            )
        diffs = runs.differences(was, ident)
        if keep and diffs == ["the content of refusal_threshold"]:
            raise SystemExit(
                f"{eval_dir}: decided at another calibration than its run's now; "
                "--threshold auto decides it at the new one"
            )
        # The answers must be what this model, adapter, probe and data give now: only the
        # threshold may differ (nothing, with keep). A probe where the eval had none is an
        # eval without scores, which seeding stops on below.
        allowed = set() if keep else {"the content of refusal_threshold"}
        if "refusal_probe" not in was["inputs"]:
            allowed.add("the content of refusal_probe")
        other = [
            d for d in diffs if d not in allowed and not d.startswith("gen.refusal_threshold ")
        ]
        if other:
            raise SystemExit(
                f"{eval_dir}: its answers are not what the run gives now: it differs in "
                + "; ".join(other[:4])
                + "; evaluate again instead"
            )
        # The saved scores are of the kind the eval computed: a threshold calibrated on the
        # other kind (a probe added or removed since) means nothing against them.
        had = json.loads((eval_dir / runs.EVAL_METRICS).read_text()).get("refusal_score_source")
        wants = "start" if probe_path(cfg.gen) is None else "probe"
        if threshold is not None and (had or "start").split()[0] != wants:
            raise SystemExit(
                f"{eval_dir}: its scores are {had or 'start'}, the run now scores refusals "
                f"with {wants}; evaluate again instead"
            )
        if runs.finished(out) is not None:
            if runs.recorded_identity(out, "eval") == ident:
                print(f"{out}: done already, at these thresholds")
                continue
            raise SystemExit(
                f"{out}: holds answers decided at other thresholds (the run was calibrated "
                "again since?); give another --suffix"
            )
        n = seed_partial(eval_dir, out, decided=not keep or threshold is not None)
        # Recorded as the eval itself would, so that it takes the seeded answers as its own.
        atomic.write_json(out / runs.run_file("eval"), ident)
        if generator is None:
            rt = runtime.for_stage(cfg.runtime, cfg.gen.model, cfg.gen.is_local)
            generator = load_generator(cfg.gen, rt)
        generator.max_new_tokens = cfg.gen.max_new_tokens  # type: ignore[attr-defined]
        m = evaluate.run(cfg, generator)
        keys = ("answerable_f1", "answerable_em", "refusal_accuracy", "false_refusal_rate")
        print(
            f"{out} ({n} answers decided again at {m.get('refusal_thresholds_by_lang') or m['refusal_threshold']}): "
            + ", ".join(f"{k} {m[k]:.1f}" for k in keys if m.get(k) is not None)
        )


if __name__ == "__main__":
    allocator.ensure()  # may re-execute the script on jemalloc, as the ragtune command does
    main()
