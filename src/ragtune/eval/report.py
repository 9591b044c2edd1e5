"""Human-readable evaluation report: `report.md` and a self-contained `report.html`.

The HTML is built with `ragtune.html` (inline CSS, charts as embedded PNGs: nothing fetched
from the network), and every text that came from data or a model is HTML-escaped. Written by
the eval stage:

    write_report(run_dir, metrics, rows, title="Qwen2.5-0.5B + LoRA on squad_v2", meta=meta)

`label`, `chart_label` and `format_metric` are reused by `ragtune.eval.compare` and the card.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune import html as kit
from ragtune.eval.metrics import (
    END_TO_END_KEYS,
    HEADLINE,
    JUDGE_KEYS,
    LOWER_IS_BETTER,
    METRIC_INFO,
    SPEED_KEYS,
)

CHART_KEYS = [
    "exact_match",
    "f1",
    "rouge_l",
    "answer_in_context_rate",
    "refusal_accuracy",
    "false_refusal_rate",
    "hallucination_rate",
]
LATENCY_KEYS = SPEED_KEYS
GROUP_KEYS = ["n", "exact_match", "f1", "rouge_l", "refusal_rate", "hallucination_rate"]
MAX_SAMPLES = 40  # rows in the sample table: the worst first, then the rest in data order
MAX_WORST = 10


def label(key: str) -> str:
    return METRIC_INFO.get(key, (key.replace("_", " "), ""))[0]


def chart_label(key: str) -> str:
    """Label for a chart axis: lower-is-better metrics get a down arrow."""
    return label(key) + (" ↓" if key in LOWER_IS_BETTER else "")


def format_metric(key: str, value: Any) -> str:
    """Value with its unit: "63.2%", "0.812", "0.412 s", "35.1 tok/s", "—" for None."""
    if value is None:
        return "—"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return str(value)
    unit = METRIC_INFO.get(key.rsplit(".", 1)[-1], ("", ""))[1]
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "cos":
        return f"{value:.3f}"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "tok/s":
        return f"{value:.1f} tok/s"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def pick_samples(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """(rows to show, how many of them are "worst"): hallucinations and low F1 first."""
    order = sorted(range(len(rows)), key=lambda i: (not rows[i]["hallucinated"], rows[i]["f1"]))
    worst = [i for i in order if rows[i]["hallucinated"] or rows[i]["f1"] < 0.5][:MAX_WORST]
    chosen = set(worst)
    rest = [i for i in range(len(rows)) if i not in chosen][: MAX_SAMPLES - len(worst)]
    return [rows[i] for i in worst + rest], len(worst)


def _gold(row: dict[str, Any]) -> str:
    return " | ".join(row["answers"]) if row["answerable"] else "(unanswerable: should refuse)"


def _flags(row: dict[str, Any]) -> list[tuple[str, str]]:
    flags = []
    if row["hallucinated"]:
        flags.append(("bad", "hallucinated"))
    if row["refused"]:
        flags.append(("ok" if not row["answerable"] else "bad", "refused"))
    if row.get("in_context") and row["answerable"]:
        flags.append(("info", "in context"))
    if row.get("kind"):
        flags.append(("info", row["kind"]))
    return flags


def _sections(metrics: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """Table bodies shared by the Markdown and HTML renderings."""
    groups: dict[str, list[list[Any]]] = {}
    for name in ("by_kind", "by_lang"):
        groups[name] = [
            [g, *(format_metric(k, s.get(k)) for k in GROUP_KEYS)]
            for g, s in (metrics.get(name) or {}).items()
        ]
    optional = ["refusals_in_words", *END_TO_END_KEYS, *JUDGE_KEYS]
    keys = [*HEADLINE, *(k for k in optional if metrics.get(k) is not None)]
    groups["headline"] = [[label(k), format_metric(k, metrics.get(k))] for k in keys]
    groups["latency"] = [[label(k), format_metric(k, metrics.get(k))] for k in LATENCY_KEYS]
    return groups


def render_markdown(
    metrics: dict[str, Any], rows: Sequence[dict[str, Any]], title: str, meta: dict[str, Any]
) -> str:
    t = _sections(metrics)
    counts = f"{metrics.get('n', len(rows))} examples ({metrics.get('n_answerable', '?')} answerable, {metrics.get('n_unanswerable', '?')} unanswerable)"
    parts = [f"# {kit.md_cell(title)}", "", counts, ""]
    if meta:
        parts += [kit.md_table(["Run", ""], [[k, _meta_value(v)] for k, v in meta.items()]), ""]
    parts += ["## Headline metrics", "", kit.md_table(["Metric", "Value"], t["headline"]), ""]
    group_header = ["Group", *(label(k) for k in GROUP_KEYS)]
    parts += ["## By kind", "", kit.md_table(group_header, t["by_kind"]), ""]
    parts += ["## By language", "", kit.md_table(group_header, t["by_lang"]), ""]
    points = metrics.get("refusal_tradeoff") or []
    if points:
        step = max(1, len(points) // 12)  # a dozen rows: the curve's shape, not every point
        shown_points = points[::step] + ([points[-1]] if (len(points) - 1) % step else [])
        parts += [
            "## Refusal threshold trade-off",
            "",
            _tradeoff_note(metrics),
            "",
            kit.md_table(
                ["Threshold", "F1", "Refusal accuracy", "False refusals", "Answered"],
                [
                    [
                        f"{p['threshold']:.4f}",
                        f"{p['f1']:.1f}",
                        format_metric("refusal_accuracy", p["refusal_accuracy"]),
                        format_metric("false_refusal_rate", p["false_refusal_rate"]),
                        f"{p['answered']:.1f}%",
                    ]
                    for p in shown_points
                ],
            ),
            "",
        ]
    parts += ["## Latency", "", kit.md_table(["Metric", "Value"], t["latency"]), ""]
    shown, n_worst = pick_samples(rows)
    parts += [
        "## Sample predictions",
        "",
        f"Rows marked ✗ ({n_worst}) are the worst: hallucinations first, then lowest F1.",
        "",
        kit.md_table(
            ["", "Question", "Gold", "Prediction", "Refused", "F1"],
            [
                [
                    "✗" if i < n_worst else "",
                    r["question"],
                    _gold(r),
                    r["prediction"],
                    "yes" if r["refused"] else "no",
                    f"{r['f1']:.2f}",
                ]
                for i, r in enumerate(shown)
            ],
        ),
        "",
    ]
    if metrics.get("notes"):
        parts += ["## Notes", "", *(f"- {kit.md_cell(n)}" for n in metrics["notes"]), ""]
    parts += [
        "Units: scores and rates are percentages 0-100; semantic similarity is a mean cosine; latency in seconds."
    ]
    return "\n".join(parts) + "\n"


def _tradeoff_note(metrics: dict[str, Any]) -> str:
    auc = metrics.get("refusal_score_auc")
    by_lang = metrics.get("refusal_thresholds_by_lang") or {}
    used = (
        ", ".join(f"{lang} {t:.4g}" for lang, t in by_lang.items()) + " (one per language)"
        if by_lang
        else f"{metrics.get('refusal_threshold')}"
    )
    return (
        f"Each refusal threshold t refuses the questions whose refusal score is above t; "
        f"this eval used t = {used}. F1 counts a refusal of an "
        "unanswerable question as 1 (SQuAD 2.0)."
        + (
            ""
            if auc is None
            else f" An unanswerable question scores above an answerable one {auc:.1f}% of "
            "the time (refusal score AUC; 50 is chance)."
        )
    )


def _meta_value(v: Any) -> str:
    if v is None:
        return "—"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def render_html(
    metrics: dict[str, Any], rows: Sequence[dict[str, Any]], title: str, meta: dict[str, Any]
) -> str:
    t = _sections(metrics)
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    body.append(
        f'<p class="sub">{metrics.get("n", len(rows))} examples · '
        f"{metrics.get('n_answerable', '?')} answerable · "
        f"{metrics.get('n_unanswerable', '?')} unanswerable</p>"
    )
    if meta:
        body.append(kit.html_table(["Run", ""], [[k, _meta_value(v)] for k, v in meta.items()]))
    cards = []
    for k in HEADLINE[:3] + ["semantic_similarity", "refusal_accuracy", "hallucination_rate"]:
        cards.append(
            f'<div class="card"><div class="v">{esc(format_metric(k, metrics.get(k)))}</div>'
            f'<div class="k">{esc(label(k))}</div></div>'
        )
    body += ["<h2>Headline metrics</h2>", f'<div class="cards">{"".join(cards)}</div>', "<p></p>"]
    body.append(kit.html_table(["Metric", "Value"], t["headline"]))
    chart = kit.bar_chart(
        [chart_label(k) for k in CHART_KEYS],
        {"value": [metrics.get(k) for k in CHART_KEYS]},
        "Main metrics (%), ↓ lower is better",
    )
    body.append(f'<p><img alt="bar chart of the main metrics" src="{chart}"></p>')
    group_header = ["Group", *(label(k) for k in GROUP_KEYS)]
    for name, heading in (("by_kind", "By kind"), ("by_lang", "By language")):
        body += [f"<h2>{heading}</h2>", kit.html_table(group_header, t[name])]
        groups = metrics.get(name) or {}
        if len(groups) > 1:
            keys = ["exact_match", "f1", "hallucination_rate"]
            uri = kit.bar_chart(
                list(groups),
                {chart_label(k): [s.get(k) for s in groups.values()] for k in keys},
                f"{heading} (%)",
            )
            body.append(f'<p><img alt="{esc(heading)} chart" src="{uri}"></p>')
    points = metrics.get("refusal_tradeoff") or []
    if points:
        body += [
            "<h2>Refusal threshold trade-off</h2>",
            f'<p class="notes">{esc(_tradeoff_note(metrics))}</p>',
        ]
        fig = kit.tradeoff_figure(
            points,
            metrics.get("refusal_threshold"),
            "Abstention",
            metrics.get("refusal_applied_point"),
        )
        body.append(f'<p><img alt="refusal trade-off" src="{kit.data_uri(fig)}"></p>')
    body += ["<h2>Latency</h2>", kit.html_table(["Metric", "Value"], t["latency"])]
    lat = [
        float(r["latency_s"]) / max(int(r.get("batch_size") or 1), 1)
        for r in rows
        if r.get("latency_s") is not None
    ]
    if len(lat) > 1:
        uri = kit.histogram(lat, "Time per answer (its batch's wall time / batch size)", "seconds")
        body.append(f'<p><img alt="latency histogram" src="{uri}"></p>')
    shown, n_worst = pick_samples(rows)
    body += [
        "<h2>Sample predictions</h2>",
        f'<p class="notes">Highlighted rows ({n_worst}) are the worst: hallucinations first, then lowest F1.</p>',
    ]
    table_rows = []
    for r in shown:
        tags = "".join(f'<span class="tag {c}">{esc(s)}</span>' for c, s in _flags(r))
        table_rows.append(
            [
                r["question"],
                _gold(r),
                r["prediction"],
                "yes" if r["refused"] else "no",
                f"{r['f1']:.2f}",
                ("raw", tags),
            ]
        )
    body.append(
        kit.html_table(
            ["Question", "Gold", "Prediction", "Refused", "F1", "Flags"],
            table_rows,
            ["worst"] * n_worst,
        )
    )
    notes = [
        *metrics.get("notes", []),
        "Scores and rates are percentages 0-100; semantic similarity is a mean cosine; latency in seconds.",
    ]
    body += [
        "<h2>Notes</h2>",
        "<ul class='notes'>",
        *(f"<li>{esc(n)}</li>" for n in notes),
        "</ul>",
    ]
    return kit.page(title, "\n".join(body))


def write_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    rows: list[dict[str, Any]],
    title: str,
    meta: dict[str, Any],
) -> None:
    """Write `report.md` and `report.html` into `out_dir` (created if needed), atomically."""
    out = Path(out_dir)
    atomic.write_text(out / "report.md", render_markdown(metrics, rows, title, meta))
    atomic.write_text(out / "report.html", render_html(metrics, rows, title, meta))
