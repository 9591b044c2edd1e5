"""The ablation table of `benchmarks/real_data.py` runs that share one --out folder.

Each training setting of real_data.py (one --tag) writes `results[-TAG].json` beside the
others and shares the base evals, so the settings are scored on the same held-out questions.
This reads them all and prints one row per setting and scoring: what differs from the
reference setting, the training size, the headline figures of every held-out set, and
how many of issue 12's bars the row meets. The table is also written to `<out>/ablation.md`.

    python benchmarks/ablation.py benchmarks/out/qwen05-v3 --reference w05
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.eval import calibrate
from ragtune.generation import abstain

# The arguments that change the trained model; the others (paths, threads) do not.
TRAIN_ARGS = [
    "train_en",
    "train_zh",
    "train_unanswerable",
    "zh_unanswerable",
    "counterfactual",
    "epochs",
    "lr",
    "rank",
    "refusal_weight",
    "max_length",
    "batch_size",
    "seed",
    "system_zh",
    "method",
]
# What an argument was before real_data.py had it, so older results compare as that value.
ADDED_LATER = {"method": "lora"}
# (set, metric key, column title, bar test or None): issue 12's bars, shared samples.
COLUMNS: list[tuple[str, str, str, Any]] = [
    ("en", "answerable_f1", "en ans. F1", lambda v: v >= 70),
    ("en", "refusal_accuracy", "en refusal", lambda v: v >= 75),
    ("en", "false_refusal_rate", "en false ref.", lambda v: v <= 15),
    ("en", "answer_in_context_rate", "en in context", lambda v: v >= 97),
    ("zh", "answerable_f1", "zh ans. F1", None),
    ("zh", "answerable_em", "zh EM", lambda v: v >= 55),
    ("zh", "refusal_accuracy", "zh refusal", lambda v: v >= 70),
    ("cf_en", "exact_match", "cf_en EM", None),
    ("cf_en", "false_refusal_rate", "cf_en refused", lambda v: v <= 5),
    ("cf_en", "answer_in_context_rate", "cf_en from passage", lambda v: v >= 90),
    ("cf_zh", "exact_match", "cf_zh EM", None),
    ("cf_zh", "false_refusal_rate", "cf_zh refused", lambda v: v <= 5),
    ("cf_zh", "answer_in_context_rate", "cf_zh from passage", lambda v: v >= 90),
]
# Lower is better for these; for the rest higher is (used for "below base").
LOWER_BETTER = {"false_refusal_rate", "hallucination_rate"}


def load(out: Path) -> dict[str, dict]:
    """tag -> results, for every results*.json of real_data.py training runs in `out`."""
    found = {}
    for path in sorted(out.glob("results*.json")):
        if path.name == "results-base.json":
            continue  # a --base-only run: no tuned model
        res = json.loads(path.read_text())
        found[res["args"].get("tag", "")] = res
    return found


def differences(args: dict, ref: dict) -> list[str]:
    def setting(a: dict, k: str) -> Any:
        v = a.get(k, ADDED_LATER.get(k))
        return v if v != "" else None  # an empty text is the setting's absence

    return [
        f"{k}={cell(args.get(k, ADDED_LATER.get(k)))}"
        for k in TRAIN_ARGS
        if setting(args, k) != setting(ref, k)
    ]


def cell(value: Any) -> str:
    """A setting as a table cell: long texts (an instruction) cut to their start, and nothing
    that would break the Markdown row."""
    text = " ".join(str(value).split()).replace("|", "/")
    return text if len(text) <= 16 else text[:12] + "…"


def reference_tag(results: dict[str, dict], asked: str) -> str:
    """`asked` when it is a setting here; otherwise the one closest to all the others, which in
    a one-factor-at-a-time ablation is the setting each of the others changes one thing of."""
    if asked in results:
        return asked
    return min(
        results,
        key=lambda t: sum(
            len(differences(results[t]["args"], r["args"])) for r in results.values()
        ),
    )


def row(scores: dict[str, dict], base: dict[str, dict] | None) -> tuple[list[str], int, int]:
    """Cells, bars met, and headline figures below the base's (None: this is the base)."""
    cells, met, below = [], 0, 0
    for lang, key, _, bar in COLUMNS:
        v = (scores.get(lang) or {}).get(key)
        if v is None:
            cells.append("-")
            continue
        ok = bar is not None and bar(v)
        met += ok
        if base is not None:
            b = (base.get(lang) or {}).get(key)
            if b is not None and (v > b if key in LOWER_BETTER else v < b):
                below += 1
        cells.append(f"**{v:.1f}**" if ok else f"{v:.1f}")
    return cells, met, below


def scoring(variant: str, calibration: dict) -> str:
    """The scoring column: the variant, and for a calibrated one the calibration its evals
    were decided at (its score, how many questions, its target), where the results say."""
    if variant == "greedy" or not calibration:
        return variant
    cap = calibrate.target_cap(str(calibration.get("target", "max_f1")))
    goal = "max F1" if cap is None else f"false ref. ≤ {100 * cap:g}%"
    n = calibration.get("held_out")
    return f"{variant} ({calibration.get('score', 'start')}, {n} questions, {goal})"


def auc_cell(record: dict) -> str:
    """The "en / zh" AUCs of a calibration record, "-" where a language has none; "pooled N"
    for a record made before calibration split the AUC by language."""
    by_lang = record.get("score_auc_by_lang") or {}
    if not any(v is not None for v in by_lang.values()):
        pooled = record.get("score_auc")
        return "-" if pooled is None else f"pooled {pooled:.1f}"
    return " / ".join("-" if by_lang.get(k) is None else f"{by_lang[k]:.1f}" for k in ("en", "zh"))


def table(out: Path, results: dict[str, dict], reference: str) -> str:
    if not results:
        raise SystemExit(f"{out}: no results*.json of a real_data.py training run")
    ref_tag = reference_tag(results, reference)
    ref = results[ref_tag]["args"]
    bars = sum(bar is not None for *_, bar in COLUMNS)
    head = ["setting", "scoring", "examples", "steps", "held-out AUC en / zh"]
    head += [c[2] for c in COLUMNS]
    head += [f"bars met (of {bars})", "below base"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = results[ref_tag]["base"]
    cells, met, _ = row(base, None)
    lines.append("| base | greedy | - | - | - | " + " | ".join(cells) + f" | {met} | - |")
    for tag in sorted(results, key=lambda t: (t != ref_tag, t)):  # the reference first
        res = results[tag]
        if res["base"] != base:  # scored on another prompt (system_zh): its own base row
            cells, met, _ = row(res["base"], None)
            name = ", ".join(differences(res["args"], ref))
            lines.append(
                f"| base, {name} | greedy | - | - | - | " + " | ".join(cells) + f" | {met} | - |"
            )
        tm = res["train"]
        # The refusal score's AUC on the held-out training articles, per language, from the
        # calibration saved with the weights (`ragtune calibrate` adds it to runs trained
        # without it). Per language, not pooled: Chinese synthetic unanswerables separate
        # far better than SQuAD's adversarial ones, and the pooled figure hid that.
        # The calibration the evals were decided at, where the results say (real_data.py
        # writes it); else the one on disk now.
        saved = res.get("calibration") or abstain.read_calibration(
            out / f"train-{tag}" if tag else out / "train"
        )
        auc = auc_cell(saved or tm.get("refusal_calibration") or {})
        name = f"{tag or 'untagged'}: {', '.join(differences(res['args'], ref)) or 'reference'}"
        for variant, scores in res["tuned"].items():
            cells, met, below = row(scores, res["base"])
            lines.append(
                f"| {name} | {scoring(variant, res.get('calibration') or {})} | "
                f"{tm['train_examples']} | {tm['steps']} | "
                f"{auc} | " + " | ".join(cells) + f" | {met} | {below} |"
            )
    return "\n".join(lines) + "\n"


def write(out: Path, reference: str = "") -> str:
    """The table of every training run in `out`, also written to `<out>/ablation.md`."""
    text = table(out, load(out), reference)
    atomic.write_text(out / "ablation.md", text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", help="a real_data.py --out folder")
    ap.add_argument(
        "--reference",
        default="",
        help="the tag others are described against (default: the one closest to all others)",
    )
    args = ap.parse_args()
    print(write(Path(args.out), args.reference))


if __name__ == "__main__":
    main()
