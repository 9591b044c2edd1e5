"""Render a `data check` report (the dict from `check.run`) as Markdown tables.

Kept apart from the checks so the numbers and their presentation change independently; the CLI
prints this text and `check.run` saves it next to the JSON.
"""

from __future__ import annotations

from typing import Any


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _ids(finding: dict[str, Any]) -> str:
    return ", ".join(finding.get("ids", [])) or "-"


def _stats_rows(by_field: dict[str, Any], prefix: str = "") -> list[list[Any]]:
    keys = ["min", "median", "p95", "max", "mean"]
    return [[prefix + name, *(s[k] for k in keys)] for name, s in by_field.items() if s is not None]


def _counts(r: dict[str, Any]) -> list[str]:
    c = r["counts"]
    n = c["examples"]
    rows = [
        ["examples", n],
        ["groups (split units: articles, documents, contexts)", c["groups"]],
        ["largest group", c["largest_group"]],
        ["distinct contexts", c["distinct_contexts"]],
        ["answerable", f"{c['answerable']} ({_pct(c['answerable_share'])})"],
        ["unanswerable", f"{c['unanswerable']} ({_pct(1 - c['answerable_share'] if n else 0)})"],
        ["languages", ", ".join(f"{k} {v}" for k, v in c["languages"].items()) or "-"],
    ]
    if c["kinds"]:
        rows.append(["kinds", ", ".join(f"{k} {v}" for k, v in c["kinds"].items())])
    if r["skipped"]:
        rows.append(["skipped at import", ", ".join(f"{v} {k}" for k, v in r["skipped"].items())])
    return ["## Counts", "", *_table(["", ""], rows)]


def _quality(r: dict[str, Any]) -> list[str]:
    e, d, a = r["empty"], r["duplicates"], r["answers_not_in_context"]
    rows = [
        [
            "empty question (left out)",
            e["question"]["count"],
            "; ".join(e["question"]["where"]) or "-",
        ],
        ["no context", e["no_context"]["count"], _ids(e["no_context"])],
        ["blank passage in contexts", e["blank_passage"]["count"], _ids(e["blank_passage"])],
        ["blank answer string", e["blank_answer"]["count"], _ids(e["blank_answer"])],
        ["no group", e["no_group"]["count"], _ids(e["no_group"])],
        ["duplicate id", d["duplicate_ids"]["count"], _ids(d["duplicate_ids"])],
        [
            "same question and context (extra copies)",
            d["same_question_and_context"]["count"],
            _ids(d["same_question_and_context"]),
        ],
        ["... of which with the same answers", d["exact"]["count"], _ids(d["exact"])],
        ["question+context with conflicting answers", d["conflicting_answers"]["count"], "-"],
        [
            "same question, different answers (any context)",
            d["same_question_different_answers"]["count"],
            "; ".join(d["same_question_different_answers"]["questions"]) or "-",
        ],
        [
            "answerable, no gold answer in context",
            f"{a['none_found']['count']} ({_pct(a['none_found']['share'])})",
            _ids(a["none_found"]),
        ],
        [
            "answerable, some gold answers not in context",
            a["some_missing"]["count"],
            _ids(a["some_missing"]),
        ],
    ]
    return ["## Problems", "", *_table(["check", "examples", "e.g. (ids or locations)"], rows)]


def _lengths(r: dict[str, Any]) -> list[str]:
    lengths = r["lengths"]
    header = ["field", "min", "median", "p95", "max", "mean"]
    rows = _stats_rows(lengths["chars"])
    for lang, by_field in lengths.get("chars_by_language", {}).items():
        rows += _stats_rows(by_field, f"{lang}: ")
    out = ["## Lengths (characters)", "", *_table(header, rows)]
    t = lengths["tokens"]
    if t:
        out += [
            f"## Lengths (tokens of {t['model']}, prompt + answer)",
            "",
            f"Measured on {t['measured']} of {t['of']} examples. "
            f"Over max_length={t['max_length']}: {t['truncated']} ({_pct(t['truncated_share'])}).",
            "",
            *_table(header, _stats_rows({"prompt + answer": t["total"], "answer": t["answer"]})),
        ]
    return out


def _diversity(r: dict[str, Any]) -> list[str]:
    v = r["diversity"]
    return [
        "## Question diversity",
        "",
        f"{v['distinct_questions']} distinct questions ({_pct(v['distinct_question_share'])}), "
        f"{v['distinct_openings']} distinct openings (first three words; for Chinese the last "
        "three characters, where the question word sits).",
        "",
        *_table(
            ["opening", "questions", "share"], [[o, n, _pct(s)] for o, n, s in v["top_openings"]]
        ),
    ]


def _overlap(r: dict[str, Any]) -> list[str]:
    o = r["overlap"]
    if not o:
        return []
    rows = [
        ["shared groups", o["shared_groups"], o["eval_examples_in_shared_groups"]],
        ["shared contexts", o["shared_contexts"], o["eval_examples_with_shared_context"]],
        ["shared questions", o["shared_questions"], "-"],
        ["same question and context", "-", o["eval_examples_duplicating_train"]],
    ]
    return [
        f"## Train/eval overlap with {o['eval_data']} ({o['eval_examples']} examples)",
        "",
        *_table(["shared", "distinct", "eval examples affected"], rows),
    ]


def format_report(report: dict[str, Any]) -> str:
    """The report as Markdown: warnings first, then one table per check."""
    lines = [f"# Data check: {report['data']} (format: {report['format']})", ""]
    if report["warnings"]:
        lines += ["## Warnings", "", *(f"- {w}" for w in report["warnings"]), ""]
    else:
        lines += ["No warnings.", ""]
    for section in (_counts, _quality, _lengths, _diversity, _overlap):
        lines += section(report)
    return "\n".join(lines).rstrip() + "\n"
