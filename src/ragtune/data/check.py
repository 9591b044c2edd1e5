"""`ragtune data check`: a quality report on a QA data set before anyone trains on it.

Counts, empty fields, duplicates and conflicting answers, length distributions (characters, and
tokens of the chosen model's prompt), gold answers missing from their context, question
diversity, and train/eval overlap. Read-only: it never changes the data.

    report = run(CheckConfig(data="train.json", model="smollm2-135m", eval_data="eval.jsonl"))
    print(format_report(report))
"""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.config import require
from ragtune.data.check_report import format_report
from ragtune.data.importers import import_data
from ragtune.data.normalize import (
    answer_key,
    context_key,
    example_key,
    found_answers,
    normalize,
    question_key,
)
from ragtune.data.source import EMPTY_QUESTION
from ragtune.example import Example
from ragtune.prompt.encode import IGNORE_INDEX, encode_example
from ragtune.prompt.grounded import PromptConfig
from ragtune.text import language

SAMPLE_IDS = 5  # ids listed per finding, so a user can look the examples up


@dataclass
class CheckConfig:
    data: str
    """Data file to check (any supported format), or "hf:<name>" for a Hugging Face data set."""
    format: str = "auto"
    """Format of `data`; auto detects it (`ragtune data --help` lists the formats)."""
    hf_split: str = "train"
    """Split to read when `data` is a Hugging Face data set."""
    eval_data: str | None = None
    """Optional eval set: report groups, contexts and questions it shares with `data`."""
    eval_format: str = "auto"
    """Format of `eval_data`."""
    eval_hf_split: str = "validation"
    """Split to read when `eval_data` is a Hugging Face data set."""
    model: str | None = None
    """Model spec (alias, .gguf, folder, hub id) whose tokenizer measures prompt lengths in tokens."""
    max_length: int = 1024
    """Training sequence length in tokens: longer prompts get their contexts truncated."""
    token_sample: int | None = 2000
    """Measure tokens on at most this many examples (a fixed random sample); null measures all."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """The prompt wrapped around each example when measuring tokens (same as in training)."""
    out: str | None = None
    """Where to save the report as Markdown (the JSON goes next to it, same name, .json)."""

    def __post_init__(self) -> None:
        require(self, "max_length", min=8)
        require(self, "token_sample", min=1)


def stats(values: list[int]) -> dict[str, float] | None:
    """min / median / p95 / max / mean of `values` (None when empty)."""
    if not values:
        return None
    s = sorted(values)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return {
        "min": s[0],
        "median": statistics.median(s),
        "p95": p95,
        "max": s[-1],
        "mean": round(sum(s) / len(s), 1),
    }


def _share(n: int, total: int) -> float:
    return round(n / total, 4) if total else 0.0


def _counts(exs: list[Example]) -> dict[str, Any]:
    answerable = sum(ex.answerable for ex in exs)
    groups = Counter(ex.group for ex in exs)
    return {
        "examples": len(exs),
        "groups": len(groups),
        "largest_group": max(groups.values(), default=0),
        "distinct_contexts": len({context_key(c) for ex in exs for c in ex.contexts}),
        "answerable": answerable,
        "unanswerable": len(exs) - answerable,
        "answerable_share": _share(answerable, len(exs)),
        "languages": dict(Counter(language(ex.question) for ex in exs).most_common()),
        "kinds": dict(Counter(ex.kind for ex in exs if ex.kind).most_common()),
    }


def _finding(ids: list[str], total: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(ids), "ids": ids[:SAMPLE_IDS]}
    if total is not None:
        out["share"] = _share(len(ids), total)
    return out


def _empty_fields(exs: list[Example]) -> dict[str, Any]:
    return {
        "no_context": _finding([ex.id for ex in exs if not any(c.strip() for c in ex.contexts)]),
        "blank_passage": _finding([ex.id for ex in exs if any(not c.strip() for c in ex.contexts)]),
        "blank_answer": _finding([ex.id for ex in exs if any(not a.strip() for a in ex.answers)]),
        "no_group": _finding([ex.id for ex in exs if not ex.group.strip()]),
    }


def _duplicates(exs: list[Example]) -> dict[str, Any]:
    ids: Counter[str] = Counter()
    by_example: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    by_question: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    seen_exact: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    same, exact = [], []
    for ex in exs:
        ids[ex.id] += 1
        key, answers = example_key(ex), answer_key(ex)
        if key in by_example:
            same.append(ex.id)
            if (key, answers) in seen_exact:
                exact.append(ex.id)
        by_example[key].add(answers)
        by_question[key[0]].add(answers)
        seen_exact.add((key, answers))
    conflicting = [k for k, answers in by_example.items() if len(answers) > 1]
    questions = [q for q, answers in by_question.items() if len(answers) > 1]
    repeated = {i: n for i, n in ids.items() if n > 1}
    return {
        # Every record beyond an id's first counts: 50,000 records sharing one id are 49,999.
        "duplicate_ids": {
            "count": sum(repeated.values()) - len(repeated),
            "share": _share(sum(repeated.values()) - len(repeated), len(exs)),
            "distinct": len(repeated),
            "ids": list(repeated)[:SAMPLE_IDS],
            "most": sorted(repeated.items(), key=lambda kv: -kv[1])[:SAMPLE_IDS],
        },
        # Extra copies beyond the first: what `prepare` drops.
        "same_question_and_context": _finding(same),
        "exact": _finding(exact),
        "conflicting_answers": {"count": len(conflicting)},
        "same_question_different_answers": {
            "count": len(questions),
            "questions": questions[:SAMPLE_IDS],
        },
    }


def _char_lengths(exs: list[Example]) -> dict[str, Any]:
    return {
        "question": stats([len(ex.question) for ex in exs]),
        "context": stats([sum(len(c) for c in ex.contexts) for ex in exs]),
        "answer": stats([len(ex.answer) for ex in exs if ex.answerable]),
    }


def _lengths(exs: list[Example], cfg: CheckConfig) -> dict[str, Any]:
    by_lang: dict[str, list[Example]] = defaultdict(list)
    for ex in exs:
        by_lang[language(ex.question)].append(ex)
    out: dict[str, Any] = {"chars": _char_lengths(exs), "tokens": None}
    # Chinese packs a word into 1-2 characters, English into ~5: a mix blurs both, so split it
    # when each language is a real part of the data (5%+), not a stray question.
    if sum(len(group) >= 0.05 * len(exs) for group in by_lang.values()) > 1:
        out["chars_by_language"] = {lang: _char_lengths(group) for lang, group in by_lang.items()}
    if cfg.model:
        out["tokens"] = _token_lengths(exs, cfg)
    return out


def _token_lengths(exs: list[Example], cfg: CheckConfig) -> dict[str, Any]:
    from ragtune.models import load_tokenizer  # imports torch: only when tokens are asked for

    tokenizer = load_tokenizer(str(cfg.model))
    sample = exs
    if cfg.token_sample is not None and len(exs) > cfg.token_sample:
        sample = random.Random(0).sample(exs, cfg.token_sample)
    totals, answers = [], []
    for ex in sample:
        # A huge max_length measures the full, untruncated prompt + answer.
        enc = encode_example(tokenizer, ex, cfg.prompt, max_length=1 << 30)
        totals.append(len(enc["input_ids"]))
        answers.append(sum(label != IGNORE_INDEX for label in enc["labels"]))
    truncated = sum(n > cfg.max_length for n in totals)
    return {
        "model": cfg.model,
        "max_length": cfg.max_length,
        "measured": len(sample),
        "of": len(exs),
        "total": stats(totals),
        "answer": stats(answers),
        "truncated": truncated,
        "truncated_share": _share(truncated, len(sample)),
    }


def _answers_not_in_context(exs: list[Example]) -> dict[str, Any]:
    none_found, some_missing = [], []
    answerable = [ex for ex in exs if ex.answerable]
    for ex in answerable:
        found = found_answers(ex)
        if not found:
            none_found.append(ex.id)
        elif len(found) < len(ex.answers):
            some_missing.append(ex.id)
    return {
        "none_found": _finding(none_found, len(answerable)),
        "some_missing": _finding(some_missing, len(answerable)),
    }


def opening(question: str) -> str:
    """A question's pattern: its first three words, or for Chinese (question word at the end,
    no spaces) its last three characters, e.g. "…是什么"."""
    q = normalize(question)
    if language(question) == "zh":
        return "…" + q.replace(" ", "")[-3:]
    return " ".join(q.split()[:3])


def _diversity(exs: list[Example]) -> dict[str, Any]:
    questions = {question_key(ex) for ex in exs}
    openings = Counter(opening(ex.question) for ex in exs)
    return {
        "distinct_questions": len(questions),
        "distinct_question_share": _share(len(questions), len(exs)),
        "distinct_openings": len(openings),
        "top_openings": [[o, n, _share(n, len(exs))] for o, n in openings.most_common(10)],
    }


def _overlap(train: list[Example], evals: list[Example], eval_data: str) -> dict[str, Any]:
    groups = {ex.group for ex in train if ex.group}
    contexts = {context_key(c) for ex in train for c in ex.contexts if c.strip()}
    questions = {question_key(ex) for ex in train}
    keys = {example_key(ex) for ex in train}
    eval_groups = {ex.group for ex in evals if ex.group}
    eval_contexts = {context_key(c) for ex in evals for c in ex.contexts if c.strip()}
    return {
        "eval_data": eval_data,
        "eval_examples": len(evals),
        "shared_groups": len(groups & eval_groups),
        "shared_contexts": len(contexts & eval_contexts),
        "shared_questions": len({question_key(ex) for ex in evals} & questions),
        "eval_examples_in_shared_groups": sum(ex.group in groups for ex in evals),
        "eval_examples_with_shared_context": sum(
            any(context_key(c) in contexts for c in ex.contexts) for ex in evals
        ),
        "eval_examples_duplicating_train": sum(example_key(ex) in keys for ex in evals),
    }


def _warnings(r: dict[str, Any]) -> list[str]:
    w = []
    c, d = r["counts"], r["duplicates"]
    if r["skipped"]:
        w.append(f"{sum(r['skipped'].values())} records skipped at import: {r['skipped']}")
    if c["examples"] and c["unanswerable"] / c["examples"] < 0.05:
        few = f"only {c['unanswerable']}" if c["unanswerable"] else "no"
        w.append(
            f"{few} unanswerable examples: the model gets little or no practice at refusing "
            "when the context lacks the answer"
        )
    if r["empty"]["question"]["count"]:
        w.append(f"{r['empty']['question']['count']} records with an empty question (left out)")
    for name, finding in r["empty"].items():
        if finding["count"] and name != "question":
            w.append(f"{finding['count']} examples with {name.replace('_', ' ')}")
    if d["duplicate_ids"]["count"]:
        most = ", ".join(f'"{i}" x{n}' for i, n in d["duplicate_ids"]["most"][:3])
        w.append(
            f"{d['duplicate_ids']['count']} records reuse {d['duplicate_ids']['distinct']} ids "
            f"({most}): eval needs unique ids; prepare renames the repeats"
        )
    if d["same_question_and_context"]["count"]:
        w.append(
            f"{d['same_question_and_context']['count']} duplicate questions on the same context"
        )
    if d["conflicting_answers"]["count"]:
        w.append(
            f"{d['conflicting_answers']['count']} questions with conflicting answers on the same context"
        )
    missing = r["answers_not_in_context"]["none_found"]
    if missing["count"]:
        w.append(
            f"{missing['count']} answerable examples ({missing['share']:.1%}) have no gold answer "
            "in their context (generative answers, or wrong labels)"
        )
    tokens = r["lengths"]["tokens"]
    if tokens and tokens["truncated"]:
        w.append(
            f"{tokens['truncated_share']:.1%} of examples exceed max_length={tokens['max_length']} "
            "tokens and would have their contexts cut"
        )
    top = r["diversity"]["top_openings"]
    if c["examples"] >= 20 and top and top[0][2] > 0.3:
        w.append(f'{top[0][2]:.0%} of questions follow one pattern ("{top[0][0]}")')
    o = r["overlap"]
    if o and (o["shared_groups"] or o["shared_contexts"] or o["shared_questions"]):
        w.append(
            f"train/eval leak: {o['shared_groups']} shared groups, {o['shared_contexts']} shared "
            f"contexts, {o['shared_questions']} shared questions"
        )
    return w


def report_paths(out: str) -> tuple[Path, Path]:
    """(Markdown, JSON) report files for `out`: the JSON beside the Markdown, same stem."""
    md = Path(out)
    md = md.with_suffix(".md") if md.suffix.lower() in (".json", "") else md
    return md, md.with_suffix(".json")


def run(cfg: CheckConfig) -> dict[str, Any]:
    """Check `cfg.data`; return the report (and save it when `cfg.out` is set)."""
    if cfg.out:  # before the work: the report must never land on the data it describes
        atomic.refuse_overwriting_inputs(
            report_paths(cfg.out), {"data": cfg.data, "eval_data": cfg.eval_data}
        )
    # Blank questions are reported, not fatal: a check should show every problem at once.
    imported = import_data(cfg.data, cfg.format, cfg.hf_split, skip_empty_questions=True)
    exs = imported.examples
    skipped = dict(imported.skipped)
    empty_questions = {
        "count": skipped.pop(EMPTY_QUESTION, 0),
        "where": imported.skipped_where.get(EMPTY_QUESTION, [])[:SAMPLE_IDS],
    }
    report: dict[str, Any] = {
        "data": cfg.data,
        "format": imported.format,
        "skipped": skipped,
        "counts": _counts(exs),
        "empty": {"question": empty_questions, **_empty_fields(exs)},
        "duplicates": _duplicates(exs),
        "lengths": _lengths(exs, cfg),
        "answers_not_in_context": _answers_not_in_context(exs),
        "diversity": _diversity(exs),
        "overlap": None,
    }
    if cfg.eval_data:
        evals = import_data(cfg.eval_data, cfg.eval_format, cfg.eval_hf_split).examples
        report["overlap"] = _overlap(exs, evals, cfg.eval_data)
    report["warnings"] = _warnings(report)
    if cfg.out:
        md, js = report_paths(cfg.out)
        atomic.write_text(md, format_report(report))
        atomic.write_json(js, report)
    return report


__all__ = ["CheckConfig", "format_report", "run", "stats"]


Config = CheckConfig


def show(report: dict[str, Any]) -> None:
    print(format_report(report))
