"""`ragtune data prepare`: import, clean and split a QA data set into train.jsonl and eval.jsonl.

Cleaning drops records with a blank question, examples with no context, answerable examples
whose gold answers are nowhere in their context, and repeated question+context pairs (answers
of agreeing copies are merged; copies that disagree on answerability are all dropped). Each
rule can be switched off. The split is by group and shared passage (`split.py`), deterministic
for a seed. Outputs, written atomically into `out`:

    train.jsonl, eval.jsonl     canonical examples (`example.py`)
    prepare_report.json         counts kept and dropped per reason, the split, and the config

    summary = run(PrepareConfig(data="squad2.json", out="data/squad2"))

The input file is only read.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.config import require
from ragtune.data.augment import AugmentSection
from ragtune.data.importers import import_data
from ragtune.data.normalize import example_key, found_answers
from ragtune.data.source import EMPTY_QUESTION
from ragtune.data.split import split_indices
from ragtune.example import DataError, Example, write_jsonl

OUTPUT_FILES = ("train.jsonl", "eval.jsonl", "prepare_report.json")


@dataclass
class PrepareConfig:
    data: str
    """Data file to prepare (any supported format), or "hf:<name>" for a Hugging Face data set."""
    out: str
    """Output folder for train.jsonl, eval.jsonl and prepare_report.json."""
    format: str = "auto"
    """Format of `data`; auto detects it (`ragtune data --help` lists the formats)."""
    hf_split: str = "train"
    """Split to read when `data` is a Hugging Face data set."""
    eval_fraction: float = 0.1
    """Share of examples (approximately: whole groups move together) held out for eval."""
    seed: int = 0
    """Seed of the split (and of the sample taken by max_examples): same seed, same files."""
    max_examples: int | None = None
    """Keep at most this many examples after cleaning (whole groups, chosen by the seed)."""
    drop_duplicates: bool = True
    """Drop repeats of a question on the same context (merging their answers)."""
    drop_answer_not_in_context: bool = True
    """Drop answerable examples none of whose answers occurs in the context; set false for
    generative (free-text) answers."""
    drop_no_context: bool = True
    """Drop examples whose contexts are empty or blank."""
    drop_empty_questions: bool = True
    """Drop records with a blank question; false makes them an error naming the line."""
    augment: AugmentSection = dataclasses.field(default_factory=AugmentSection)
    """Synthetic unanswerable and counterfactual examples, added after the split to each
    side from that side's own documents (`ragtune.data.augment`)."""

    def __post_init__(self) -> None:
        require(self, "eval_fraction", min=0, below=1)
        require(self, "max_examples", min=1)


def _dedupe(exs: list[Example], dropped: Counter[str], notes: Counter[str]) -> list[Example]:
    copies: dict[tuple[str, ...], list[Example]] = {}
    for ex in exs:
        copies.setdefault(example_key(ex), []).append(ex)
    kept = []
    for group in copies.values():
        first, rest = group[0], group[1:]
        if len({ex.answerable for ex in group}) > 1:
            # One copy says refuse, another says answer: no way to tell which is right.
            dropped["conflicting_answerability"] += len(group)
            continue
        answers = list(dict.fromkeys(a for ex in group for a in ex.answers))
        if len(answers) > len(first.answers):
            notes["duplicate_answers_merged"] += 1
            first = dataclasses.replace(first, answers=answers)
        if rest:
            dropped["duplicate"] += len(rest)
        kept.append(first)
    return kept


def _unique_ids(exs: list[Example], notes: Counter[str]) -> list[Example]:
    """Distinct examples that share an id get `<id>-2`, `<id>-3`, ...: eval (and resume)
    key answers by id, so prepare's output must never repeat one."""
    taken = {ex.id for ex in exs}
    seen: set[str] = set()
    out = []
    for ex in exs:
        if ex.id in seen:
            n = 2
            while f"{ex.id}-{n}" in taken:
                n += 1
            new_id = f"{ex.id}-{n}"
            taken.add(new_id)
            notes["duplicate_ids_renamed"] += 1
            ex = dataclasses.replace(ex, id=new_id)
        seen.add(ex.id)
        out.append(ex)
    return out


def clean(
    exs: list[Example], cfg: PrepareConfig
) -> tuple[list[Example], dict[str, int], dict[str, int]]:
    """(kept examples in input order, dropped count per reason, other changes per kind)."""
    dropped: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    kept = []
    for ex in exs:
        if cfg.drop_no_context and not any(c.strip() for c in ex.contexts):
            dropped["no_context"] += 1
            continue
        if cfg.drop_answer_not_in_context and ex.answerable:
            found = found_answers(ex)
            if not found:
                dropped["answer_not_in_context"] += 1
                continue
            if len(found) < len(ex.answers):
                # The first answer is the training target: it must be one the context holds.
                notes["answers_not_in_context_removed"] += 1
                ex = dataclasses.replace(ex, answers=found)
        kept.append(ex)
    if cfg.drop_duplicates:
        kept = _dedupe(kept, dropped, notes)
    kept = _unique_ids(kept, notes)
    return kept, dict(dropped), dict(notes)


def _side(exs: list[Example]) -> dict[str, Any]:
    answerable = sum(ex.answerable for ex in exs)
    return {
        "examples": len(exs),
        "groups": len({ex.group for ex in exs}),
        "answerable": answerable,
        "unanswerable": len(exs) - answerable,
    }


def _check_paths(cfg: PrepareConfig) -> Path:
    """`out` as a folder prepare may replace whole: the split is published as one set."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"out: {out} exists and is not a folder")
    atomic.refuse_overwriting_inputs([out], {"data": cfg.data})
    atomic.remove_stale(out.resolve().parent)  # a set a killed prepare left half-built
    others = (
        sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_FILES) if out.is_dir() else []
    )
    if others:
        raise DataError(
            f"out: {out} holds other files ({', '.join(others[:3])}); prepare replaces the "
            "folder as one set (so a kill never leaves a mixed split): choose a new or "
            "prepare-only folder"
        )
    return out


def run(cfg: PrepareConfig) -> dict[str, Any]:
    """Import, clean and split `cfg.data` into `cfg.out`; return the summary also saved there."""
    out = _check_paths(cfg)
    imported = import_data(
        cfg.data, cfg.format, cfg.hf_split, skip_empty_questions=cfg.drop_empty_questions
    )
    kept, dropped, notes = clean(imported.examples, cfg)
    skipped = dict(imported.skipped)
    if EMPTY_QUESTION in skipped:
        dropped = {"empty_question": skipped.pop(EMPTY_QUESTION), **dropped}
    if not kept:
        raise DataError(f"{cfg.data}: no examples left after cleaning (dropped: {dropped})")
    train_idx, eval_idx, cut = split_indices(kept, cfg.eval_fraction, cfg.seed, cfg.max_examples)
    train = cfg.augment.apply([kept[i] for i in train_idx], cfg.seed)
    evals = cfg.augment.apply([kept[i] for i in eval_idx], cfg.seed)

    warnings = []
    if cfg.eval_fraction > 0 and not evals:
        warnings.append(
            "eval is empty: too few examples, or all of them share one group or context"
        )
    if train and all(ex.answerable for ex in train):
        warnings.append(
            "no unanswerable examples in train: the model will not learn to refuse "
            "(augment.unanswerable_share=0.3 adds some from other documents)"
        )
    n_imported = len(imported.examples) + sum(imported.skipped.values())
    if dropped.get("answer_not_in_context", 0) > 0.5 * n_imported:
        warnings.append(
            "most answers do not occur in their context (free-text answers?): "
            "set drop_answer_not_in_context=false to keep them"
        )

    files = {name.split(".")[0]: str(out / name) for name in OUTPUT_FILES}
    # All three files are written into a temporary folder and published together: a kill
    # leaves the old split or the new one, never a new train beside an old eval.
    tmp = atomic.temp_dir_beside(out)
    try:
        write_jsonl(tmp / "train.jsonl", train)
        write_jsonl(tmp / "eval.jsonl", evals)
        summary = _summary(cfg, imported.format, n_imported, skipped, dropped, notes, cut)
        summary.update(train=_side(train), eval=_side(evals), files=files, warnings=warnings)
        atomic.write_json(tmp / "prepare_report.json", summary)
        atomic.publish_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _summary(
    cfg: PrepareConfig,
    fmt: str,
    n_imported: int,
    skipped: dict[str, int],
    dropped: dict[str, int],
    notes: dict[str, int],
    cut: int,
) -> dict[str, Any]:
    return {
        "data": cfg.data,
        "format": fmt,
        "imported": n_imported,
        "skipped_at_import": skipped,
        "dropped": dropped,
        "changed": notes,
        "cut_by_max_examples": cut,
        "config": dataclasses.asdict(cfg),
    }


Config = PrepareConfig


def show(result: dict[str, Any]) -> None:
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
