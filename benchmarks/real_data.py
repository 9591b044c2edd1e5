"""Real-data benchmark: base vs tuned on held-out SQuAD 2.0 articles and CMRC 2018 documents.

Splits both shared samples by article/document (no passage on both sides), fine-tunes one
model (LoRA, or every weight with --method full) on a mixed English + Chinese training
subset, and scores the base and the tuned model on the same held-out questions through
`ragtune eval`. Held-out sets, each built from held-out
documents only:
- en: SQuAD 2.0 questions, half unanswerable (SQuAD's own).
- zh: CMRC 2018 questions plus unanswerable ones made as `data prepare` makes them
  (`augment.unanswerable_share`: BM25-similar passages of other held-out documents).
- cf_en, cf_zh: counterfactual questions (`augment`: the answer span swapped for another of
  its kind from the held-out corpus).
Training data gets the same augmentation from training documents. The tuned model is scored
greedy, with its calibrated refusal threshold (chosen by training on its held-out split), and
with calibration plus extractive decoding. Prints the before/after table and writes under
--out results.json, per-run reports and tradeoff.png (the threshold trade-off on en); with
--tag, several training settings share one --out, and ablation.md puts them side by side.

    python benchmarks/real_data.py --model smollm2-135m --out benchmarks/out/smollm2
    python benchmarks/real_data.py --model ~/.cache/ragtune/models/qwen2.5-coder-0.5b-instruct.gguf \
        --out benchmarks/out/qwen05

Reads ../shared/data by default (--squad / --cmrc to change); results go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import yaml
from ablation import write as write_ablation  # benchmarks/: the script's folder is on sys.path
from more_calibration import calibrate_on_more, calibration_set, target_name
from redecide import seed_partial

from ragtune import allocator, atomic, probe, runs, runtime
from ragtune.data.augment import COUNTERFACTUAL_KIND, add_counterfactuals, add_unanswerables
from ragtune.data.importers import import_data
from ragtune.data.split import split_indices
from ragtune.eval import calibrate
from ragtune.eval import stage as evaluate
from ragtune.eval.calibrate import CalibrateSection, wilson
from ragtune.eval.stage import EvalConfig
from ragtune.example import Example, write_jsonl
from ragtune.generation import abstain
from ragtune.generation.load import GenerateConfig, load_generator, refusal_threshold
from ragtune.prompt.grounded import PromptConfig
from ragtune.runtime import RuntimeSection
from ragtune.train import stage as train
from ragtune.train.config import LoraSection, TrainConfig, method_lr

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HEADLINE = [
    "answerable_f1",
    "answerable_em",
    "exact_match",
    "f1",
    "refusal_accuracy",
    "false_refusal_rate",
    "answer_in_context_rate",
    "hallucination_rate",
    "answer_s_mean",
]

# Shares of documents held out for evaluation: SQuAD's 10 articles -> 2, CMRC's 680 -> 68.
SQUAD_HELD_OUT, CMRC_HELD_OUT = 0.2, 0.1


def saved_cap(run_dir: Path) -> int | None:
    """gen.max_new_tokens of the eval saved in `run_dir`."""
    path = run_dir / runs.EVAL_CONFIG
    if not path.is_file():
        return None
    return int(
        (yaml.safe_load(path.read_text(encoding="utf-8")).get("gen") or {})["max_new_tokens"]
    )


def at_least(low: int) -> Any:
    """An argparse type: an integer of at least `low`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: at least {low}")
        return value

    return parse


def split(
    exs: list[Example], eval_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    tr, ev, _ = split_indices(exs, eval_fraction, seed)
    return [exs[i] for i in tr], [exs[i] for i in ev]


def sample(
    exs: list[Example], n: int, unanswerable_share: float, rng: random.Random
) -> list[Example]:
    """Up to n examples of which about `unanswerable_share` are unanswerable (where there are any)."""
    pos = [e for e in exs if e.answerable]
    neg = [e for e in exs if not e.answerable]
    k = min(round(n * unanswerable_share), len(neg))
    return rng.sample(pos, min(n - k, len(pos))) + rng.sample(neg, k)


def float_or_auto(value: str) -> float | str:
    """A --lr / --epochs value: a number, or "auto" (the balanced preset chooses, as
    `ragtune train` does when the key is not given)."""
    return value if value == "auto" else float(value)


def plot_tradeoff(tuned: dict[str, dict[str, dict]], path: Path) -> None:
    """The calibrated model's threshold trade-off on en, with the chosen point."""
    from ragtune import html

    scored = tuned.get("calibrated", {}).get("en") or {}
    if scored.get("refusal_tradeoff"):
        fig = html.tradeoff_figure(
            scored["refusal_tradeoff"], scored.get("refusal_threshold"), "SQuAD 2.0 held out"
        )
        fig.savefig(path)


def main() -> None:
    allocator.ensure()  # may re-execute the script on jemalloc, as the ragtune command does
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="benchmarks/out/run")
    ap.add_argument("--squad", default=str(SHARED / "squad2_sample.json"))
    ap.add_argument("--cmrc", default=str(SHARED / "cmrc2018_sample.json"))
    ap.add_argument(
        "--train-en", type=int, default=500, help="training examples from SQuAD articles"
    )
    ap.add_argument(
        "--train-zh", type=int, default=300, help="training examples from CMRC documents"
    )
    ap.add_argument(
        "--eval-en", type=int, default=160, help="held-out SQuAD questions (half unanswerable)"
    )
    ap.add_argument(
        "--train-unanswerable",
        type=float,
        default=1 / 3,
        help="share of unanswerable SQuAD training questions (more makes the model over-refuse)",
    )
    ap.add_argument("--eval-zh", type=int, default=100, help="held-out CMRC questions")
    ap.add_argument("--eval-zh-unanswerable", type=int, default=50, help="synthetic, held-out")
    ap.add_argument(
        "--eval-zh-all",
        action="store_true",
        help="also score every held-out CMRC question (set all_zh, about 250): CMRC EM with "
        "a narrower interval than the 100 of zh give; the other sets stay as they are",
    )
    ap.add_argument("--eval-cf", type=int, default=40, help="counterfactual questions per language")
    ap.add_argument(
        "--zh-unanswerable",
        type=float,
        default=0.3,
        help="synthetic unanswerable share, CMRC training",
    )
    ap.add_argument(
        "--counterfactual", type=float, default=0.15, help="counterfactual share of training"
    )
    ap.add_argument("--max-false-refusal", type=float, default=None, help="calibration target")
    ap.add_argument(
        "--calibrate-unused",
        type=at_least(0),
        default=0,
        metavar="N",
        help="after training, choose the threshold again on its held-out split plus N SQuAD "
        "questions of the training articles that training did not use (the split holds few "
        "English articles); the calibrated evals are then named <eval>-cal<count>-<target>",
    )
    ap.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip training's calibration (for greedy-only runs; `ragtune calibrate` later)",
    )
    ap.add_argument(
        "--probe",
        action="store_true",
        help="calibrate on a refusal probe's scores (calibrate.probe=true)",
    )
    ap.add_argument(
        "--variants",
        default="greedy,calibrated,extractive",
        help="tuned-model scorings: greedy, calibrated, extractive (calibrated + extractive)",
    )
    ap.add_argument(
        "--epochs", type=float_or_auto, default=1.0, help="a number, or auto: the preset's choice"
    )
    ap.add_argument(
        "--lr",
        type=float_or_auto,
        default=None,
        help="a number, or auto: the preset's; default 2e-4 (scaled as `train` scales a "
        "preset's with --method full)",
    )
    ap.add_argument(
        "--method",
        default="lora",
        choices=["lora", "full"],
        help="lora, or full fine-tuning (every weight, at a lower learning rate)",
    )
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (method lora)")
    ap.add_argument("--max-length", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32, help="answer cap, English sets")
    ap.add_argument(
        "--max-new-tokens-zh",
        type=int,
        default=64,
        help="answer cap, Chinese sets: CMRC spans are long (9 of the 100 held-out golds "
        "exceed 32 Qwen tokens, 1 exceeds 64), and a cut answer scores EM 0",
    )
    ap.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in training: ~30%% slower, far less memory (1.5B on 24 GiB)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refusal-weight", type=float, default=1.0, help="train refusal_loss_weight")
    ap.add_argument(
        "--tag",
        default="",
        help="name of this training setting: several settings share one --out and its base evals",
    )
    ap.add_argument(
        "--system-zh",
        default="",
        help="a Chinese system instruction for Chinese questions (prompt.system_zh), in "
        "training and every eval; the base's Chinese sets are scored again under it",
    )
    ap.add_argument("--threads", type=runtime.threads_arg, default="auto", help="a number, or auto")
    ap.add_argument(
        "--base-only",
        action="store_true",
        help="score the base model zero-shot and stop (the reference row of a bigger model)",
    )
    ap.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "transformers", "llamacpp"],
        help="generation engine (llamacpp: a GGUF base scored without dequantizing it)",
    )
    args = ap.parse_args()
    if args.lr is None:  # the script's default: a LoRA rate, scaled as `train` scales a preset's
        args.lr = method_lr(2e-4, args.method)

    out = Path(args.out)
    data = {}
    for name, path in (("squad", args.squad), ("cmrc", args.cmrc)):
        # Real files have a few blank questions (CMRC has 2): skip and report them, as `data prepare` does.
        imported = import_data(path, skip_empty_questions=True)
        print(f"{path}: {len(imported.examples)} examples; skipped {imported.skipped or 'none'}")
        data[name] = imported.examples
    en_train, en_eval = split(data["squad"], SQUAD_HELD_OUT, args.seed)
    zh_train, zh_eval = split(data["cmrc"], CMRC_HELD_OUT, args.seed)
    # Separate generators: the held-out sets do not change when the training sizes do,
    # so base-model scores stay comparable (and reusable) across training settings.
    eval_rng, train_rng = random.Random(args.seed), random.Random(args.seed + 1)

    def counterfactuals(pool: list[Example], n: int, rng: random.Random) -> list[Example]:
        made = [
            e for e in add_counterfactuals(pool, 1.0, args.seed) if e.kind == COUNTERFACTUAL_KIND
        ]
        return rng.sample(made, min(n, len(made)))

    zh_unans = [e for e in add_unanswerables(zh_eval, 1.0, args.seed) if not e.answerable]
    evals = {
        "en": sample(en_eval, args.eval_en, 0.5, eval_rng),
        "zh": eval_rng.sample(zh_eval, min(args.eval_zh, len(zh_eval)))
        + eval_rng.sample(zh_unans, min(args.eval_zh_unanswerable, len(zh_unans))),
        "cf_en": counterfactuals(en_eval, args.eval_cf, eval_rng),
        "cf_zh": counterfactuals(zh_eval, args.eval_cf, eval_rng),
    }
    if args.eval_zh_all:  # added last and drawn from no generator: the sets above do not move
        evals["all_zh"] = list(zh_eval)
    en_part = sample(en_train, args.train_en, args.train_unanswerable, train_rng)
    zh_part = train_rng.sample(zh_train, min(args.train_zh, len(zh_train)))
    zh_part = add_unanswerables(zh_part, args.zh_unanswerable, args.seed)
    train_set = add_counterfactuals(en_part + zh_part, args.counterfactual, args.seed)
    train_rng.shuffle(train_set)
    suffix = f"-{args.tag}" if args.tag else ""
    train_file = out / "data" / f"train{suffix}.jsonl"
    write_jsonl(train_file, train_set)
    for lang, exs in evals.items():
        write_jsonl(out / "data" / f"eval_{lang}.jsonl", exs)
    kinds = {k: sum(e.kind == k for e in train_set) for k in {e.kind for e in train_set}}
    print(
        f"train {len(train_set)} examples ({len({e.group for e in train_set})} articles; "
        f"kinds {kinds}); eval "
        + ", ".join(f"{k} {len(v)}" for k, v in evals.items())
        + " on held-out articles"
    )

    timings: dict[str, float] = {}
    rt_section = RuntimeSection(threads=args.threads)
    prompt = PromptConfig(system_zh=args.system_zh)
    # Chinese evals under another instruction get their own folders (the base's included),
    # so they are neither reused from nor compared against the default prompt's.
    zh_prompt = (
        "-zh" + hashlib.sha256(args.system_zh.encode()).hexdigest()[:6] if args.system_zh else ""
    )

    def score(
        label: str,
        model: str,
        adapter: str | None,
        threshold: str = "none",
        extractive: bool = False,
        tail: str = "",
    ) -> dict[str, dict]:
        results = {}
        gen_cfg = GenerateConfig(
            model=model,
            adapter=adapter,
            max_new_tokens=args.max_new_tokens,
            batch_size=8,
            refusal_threshold=threshold,  # type: ignore[arg-type]
            extractive=extractive,
            backend=args.backend,
        )
        # Loaded once per model, on the first eval that is not done yet; Any: the answer cap
        # (max_new_tokens) is set per set, an attribute every engine has but the protocol lacks.
        generator: Any = None
        for lang in evals:
            zh = lang.endswith("zh")
            name = f"{label}{zh_prompt if zh else ''}_{lang}"
            run_dir = out / f"{name}{tail}"
            cap = args.max_new_tokens_zh if zh else args.max_new_tokens
            cfg = EvalConfig(
                data=str(out / "data" / f"eval_{lang}.jsonl"),
                out=str(run_dir),
                label=f"{label} {lang}",
                gen=dataclasses.replace(gen_cfg, max_new_tokens=cap),
                # Only the Chinese sets read system_zh; the English ones keep the plain
                # prompt, so their folders stay shared with runs made without it.
                prompt=prompt if zh else PromptConfig(),
                runtime=rt_section,
            )
            done = runs.finished(run_dir)
            if done is not None and saved_cap(run_dir) == cap:
                stale = evaluate.recorded_differences(run_dir, cfg)
                if stale:
                    hint = (
                        ". A calibrated eval decided at another calibration: `python "
                        f"benchmarks/redecide.py {run_dir} --suffix S` decides it at the run's "
                        "now, or give the --calibrate-unused and --max-false-refusal it was "
                        "made with; otherwise move the folder away to evaluate again"
                        if all(d in evaluate.REFUSAL_INPUTS for d in stale)
                        else "; its answers would differ: move the folder away to evaluate again"
                    )
                    raise SystemExit(
                        f"{run_dir}: not the eval asked for now: it differs in "
                        + "; ".join(stale[:4])
                        + hint
                    )
                results[lang] = done
                continue
            # A finished eval with another cap falls through: eval names the difference.
            t0 = time.perf_counter()
            if generator is None:
                rt = runtime.resolve(rt_section)
                runtime.set_torch_threads(rt.threads)  # load_generator leaves it to the caller
                generator = load_generator(gen_cfg, rt)
            generator.max_new_tokens = cap  # every engine reads it on each call
            sibling = out / name  # the same answers, decided at training's calibration
            if (
                tail
                and done is None
                and runs.finished(sibling) is not None
                and saved_cap(sibling) == cap
                and evaluate.recorded_differences(sibling, cfg)
                == ["the content of refusal_threshold"]
            ):
                # Scored at the new threshold as benchmarks/redecide.py does: the eval
                # resumes from all of them and generates none.
                n = seed_partial(sibling, run_dir)
                atomic.write_json(
                    run_dir / runs.run_file("eval"),
                    evaluate.identity(cfg, refusal_threshold(cfg.gen)),
                )
                cfg = dataclasses.replace(cfg, latency_questions=0)
                print(f"{run_dir}: {n} answers of {sibling} decided again")
            results[lang] = evaluate.run(cfg, generator)
            timings[f"eval_{label}_{lang}_s"] = round(time.perf_counter() - t0, 1)
        return results

    base = score("base", args.model, None)
    if args.base_only:
        print(f"{'set':<7}{'metric':<26}{'base':>10}")
        for lang in evals:
            for key in HEADLINE:
                b = base[lang].get(key)
                cell = "-" if b is None else f"{b:.1f}" if isinstance(b, float) else str(b)
                print(f"{lang:<7}{key:<26}{cell:>10}")
        atomic.write_json(out / "results-base.json", {"model": args.model, "args": vars(args),
                          "timings": timings, "base": base, "cpu": probe.cpu_model_name()})  # fmt: skip
        return
    train_dir = out / f"train{suffix}"
    if runs.train_finished(train_dir):
        saved = runs.saved_train_config(train_dir)
        trained_zh = (saved.get("prompt") or {}).get("system_zh", "")
        for key, was, now in (
            ("system_zh", trained_zh, args.system_zh),
            ("method", saved.get("method", "lora"), args.method),
        ):
            if was != now:
                raise SystemExit(
                    f"{train_dir}: trained with {key}={was!r}, not {now!r}; "
                    "give this setting its own --tag"
                )
        record = abstain.read_calibration(train_dir) or {}
        # (--calibrate-unused calibrates again, fitting or removing the probe as asked)
        wrong_score = (record.get("score") == "probe") != args.probe
        if "calibrated" in args.variants and wrong_score and not args.calibrate_unused:
            raise SystemExit(
                f"{train_dir}: calibrated on {record.get('score', 'start')} scores; "
                f"`ragtune calibrate {train_dir} calibrate.probe={str(args.probe).lower()}` first"
            )
        tm = json.loads((train_dir / runs.TRAIN_METRICS).read_text())
    else:
        tm = train.run(
            TrainConfig(
                data=str(train_file),
                refusal_loss_weight=args.refusal_weight,
                prompt=prompt,
                model=args.model,
                out=str(train_dir),
                method=args.method,
                lora=LoraSection(r=args.rank, alpha=2 * args.rank),
                lr=None if args.lr == "auto" else args.lr,
                epochs=None if args.epochs == "auto" else args.epochs,
                batch_size=args.batch_size,
                grad_accum=2,
                max_length=args.max_length,
                gradient_checkpointing=args.gradient_checkpointing,
                eval_fraction=0.1,  # by article: eval loss and the refusal calibration
                seed=args.seed,
                runtime=rt_section,
                resume=True,
                calibrate=CalibrateSection(
                    enabled=not args.no_calibrate,
                    probe=args.probe,
                    max_false_refusal=args.max_false_refusal,
                ),
            )
        ).metrics
    variants = [v for v in args.variants.split(",") if v]
    tail = ""
    if args.calibrate_unused:
        more = calibration_set(train_dir, en_train, train_file, args.calibrate_unused, args.seed)
        t0 = time.perf_counter()
        calibrate_on_more(
            train_dir,
            more,
            out / "data" / f"calibrate{suffix}.jsonl",
            args.max_false_refusal,
            args.probe,
            str(out / f"calibration{suffix}"),
            rt_section,
        )
        timings["calibrate_unused_s"] = round(time.perf_counter() - t0, 1)
        tail = f"-cal{len(more)}-{target_name(calibrate.target_label(args.max_false_refusal))}"
    # A LoRA run is scored as base + adapter; a full fine-tune is a model of its own.
    full = args.method == "full"
    tuned = {
        v: score(
            f"tuned{suffix}-{v}",
            str(train_dir / runs.FULL_MODEL) if full else args.model,
            None if full else str(train_dir),
            threshold="none" if v == "greedy" else "auto",
            extractive=v == "extractive",
            tail="" if v == "greedy" else tail,
        )
        for v in variants
    }
    if tuned and "en" in next(iter(tuned.values())):
        plot_tradeoff(tuned, out / f"tradeoff{suffix}.png")

    rows: list[tuple[Any, ...]] = []
    for lang in evals:
        for key in HEADLINE:
            rows.append(
                (lang, key, base[lang].get(key), *[tuned[v][lang].get(key) for v in variants])
            )
    print(
        f"\nmodel {args.model}; trained on {tm['train_examples']} examples, {tm['steps']} steps, "
        f"{tm['tokens_seen']} tokens in {tm['wall_s']} s = {tm['tokens_per_s']} tokens/s "
        f"({tm['threads']} threads, {tm['dtype']}, peak RSS {tm['peak_rss_mb']} MiB)"
    )
    # The run's calibration as it is now: training's, or the one --calibrate-unused chose.
    cal = abstain.read_calibration(train_dir) or tm.get("refusal_calibration") or {}
    if cal:
        own = cal.get("thresholds_by_lang") or {}
        print(
            f"refusal threshold {cal['threshold']:.4f} ({cal['target']}, {cal['held_out']} "
            f"held-out questions{' in ' + str(cal['data']) if cal.get('data') else ''})"
            + "".join(f", {lang} {t:.4f}" for lang, t in own.items())
        )
    print(f"{'set':<7}{'metric':<26}{'base':>10}" + "".join(f"{v:>12}" for v in variants))
    for name, key, b, *ts in rows:
        cells = [f"{x:.1f}" if isinstance(x, (int, float)) else "-" for x in (b, *ts)]
        print(f"{name:<7}{key:<26}{cells[0]:>10}" + "".join(f"{c:>12}" for c in cells[1:]))
    if "all_zh" in evals:
        n = sum(e.answerable for e in evals["all_zh"])
        print(f"\nall_zh: answerable EM of all {n} held-out CMRC questions, with its 95% interval")
        for name, scored in (("base", base), *((v, tuned[v]) for v in variants)):
            em = scored["all_zh"].get("answerable_em")
            if em is None:  # nothing answerable was scored
                continue
            lo, hi = wilson(em, n) or (em, em)
            print(f"  {name:<12}{em:5.1f}  [{lo:.1f}, {hi:.1f}]")
    atomic.write_json(
        out / f"results{suffix}.json",
        {
            "model": args.model,
            "args": vars(args),
            "train": tm,
            "calibration": {k: v for k, v in cal.items() if k not in ("sweep", "scores")},
            "timings": timings,
            "base": base,
            "tuned": tuned,
            "cpu": probe.cpu_model_name(),
        },
    )
    # Every training setting run into this --out so far, side by side (benchmarks/ablation.py).
    print("\nablation (" + str(out / "ablation.md") + "):\n" + write_ablation(out))


if __name__ == "__main__":
    main()
