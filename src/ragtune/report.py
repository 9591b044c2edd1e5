"""Human-readable evaluation report: `report.md` and a self-contained `report.html`.

The HTML needs nothing from the network: CSS is inline and charts are PNGs (matplotlib, Agg
canvas, no pyplot state) embedded as base64 data URIs, so the file can be mailed or archived
as is. Every text that came from data or a model is HTML-escaped. Written by the eval stage:

    write_report(run_dir, metrics, rows, title="Qwen2.5-0.5B + LoRA on squad_v2", meta=meta)

`format_metric`, `bar_chart` and `html_page` are reused by `ragtune.compare`.
"""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.metrics import HEADLINE, LOWER_IS_BETTER, METRIC_INFO

CHART_KEYS = [
    "exact_match",
    "f1",
    "rouge_l",
    "answer_in_context_rate",
    "refusal_accuracy",
    "false_refusal_rate",
    "hallucination_rate",
]
LATENCY_KEYS = ["latency_s_mean", "latency_s_p50", "latency_s_p95", "tokens_per_s"]
GROUP_KEYS = ["n", "exact_match", "f1", "rouge_l", "refusal_rate", "hallucination_rate"]
MAX_SAMPLES = 40  # rows in the sample table: the worst first, then the rest in data order
MAX_WORST = 10
CELL_CHARS = 300  # longer questions/predictions are cut so the table stays readable

PALETTE = ["#3b6ea8", "#e07b39", "#4a9a5b", "#b44b6b", "#7a5ea8", "#8c8c8c"]

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;
 color:#1f2328;background:#f6f7f9;margin:0}
main{max-width:1120px;margin:0 auto;padding:28px 24px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;
 border-bottom:1px solid #d8dce2;padding-bottom:4px}
.sub{color:#59636e;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px}
.card{background:#fff;border:1px solid #d8dce2;border-radius:8px;padding:12px 14px}
.card .v{font-size:24px;font-weight:600}.card .k{color:#59636e;font-size:13px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:14px}
th,td{border:1px solid #d8dce2;padding:6px 9px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums;
 white-space:nowrap}
tr.worst td{background:#fdecec}tr.worst td:first-child{border-left:4px solid #c93c3c}
.up{color:#1a7f37}.down{color:#c93c3c}
img{max-width:100%;background:#fff;border:1px solid #d8dce2;border-radius:8px}
.notes{color:#59636e;font-size:13px}code{background:#eef1f4;padding:1px 4px;border-radius:4px}
.tag{display:inline-block;font-size:12px;padding:0 6px;border-radius:9px;margin-right:3px}
.tag.bad{background:#fbd5d5;color:#8a1f1f}.tag.ok{background:#d9f2df;color:#145c2a}
.tag.info{background:#e3ebf6;color:#274f80}
"""


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


def bar_chart(
    categories: Sequence[str],
    series: dict[str, Sequence[float | None]],
    title: str,
    ylabel: str = "%",
) -> str:
    """Grouped bar chart as a PNG data URI: one group per category, one bar per series."""
    from matplotlib.figure import Figure

    n_series = max(len(series), 1)
    # ~1 inch per category plus a third per extra bar keeps tick labels apart
    width_in = max(6.5, len(categories) * (0.7 + 0.35 * n_series))
    fig = Figure(figsize=(width_in, 3.8), dpi=110)
    ax = fig.add_subplot()
    width = 0.8 / n_series
    for i, (name, values) in enumerate(series.items()):
        xs = [c + (i - (n_series - 1) / 2) * width for c in range(len(categories))]
        ys = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, ys, width * 0.92, label=name, color=PALETTE[i % len(PALETTE)])
        for b, v in zip(bars, values, strict=True):
            text = "n/a" if v is None else f"{v:.1f}"
            ax.annotate(
                text,
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    ticks = [textwrap.fill(c, 14) for c in categories]
    ax.set_xticks(range(len(categories)), ticks, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    top = max((v for vs in series.values() for v in vs if v is not None), default=0.0)
    if len(series) > 1:
        # legend in a row above the bars, with head-room so it never covers one
        ax.legend(fontsize=8, frameon=False, loc="upper center", ncol=min(len(series), 4))
        ax.set_ylim(0, max(top * 1.35, 1.0))
    else:
        ax.set_ylim(0, max(top * 1.15, 1.0))
    fig.tight_layout()
    return _data_uri(fig)


def _histogram(values: Sequence[float], title: str, xlabel: str) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 2.8), dpi=110)
    ax = fig.add_subplot()
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color=PALETTE[0])
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _data_uri(fig)


def _data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def html_page(title: str, body: str) -> str:
    """A complete HTML document with the shared inline CSS; `title` is escaped here."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def _cut(text: str, n: int = CELL_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _md_cell(text: Any) -> str:
    return html.escape(_cut(str(text)), quote=False).replace("|", "\\|")


def _md_table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _html_table(
    header: Sequence[str], body: Sequence[Sequence[Any]], classes: Sequence[str] = ()
) -> str:
    """Cells are escaped; a cell given as ("raw", html) is trusted markup built here."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for i, row in enumerate(body):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = []
        for c in row:
            if isinstance(c, tuple):
                cells.append(f"<td>{c[1]}</td>")
            elif isinstance(c, (int, float)) or _looks_numeric(c):
                cells.append(f'<td class="num">{html.escape(str(c))}</td>')
            else:
                cells.append(f"<td>{html.escape(_cut(str(c)))}</td>")
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _looks_numeric(c: Any) -> bool:
    s = str(c).strip().rstrip("%").removesuffix(" s").removesuffix(" tok/s").lstrip("+-")
    return s == "—" or s.replace(".", "", 1).isdigit()


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
    groups["headline"] = [[label(k), format_metric(k, metrics.get(k))] for k in HEADLINE]
    groups["latency"] = [[label(k), format_metric(k, metrics.get(k))] for k in LATENCY_KEYS]
    return groups


def render_markdown(
    metrics: dict[str, Any], rows: Sequence[dict[str, Any]], title: str, meta: dict[str, Any]
) -> str:
    t = _sections(metrics)
    counts = f"{metrics.get('n', len(rows))} examples ({metrics.get('n_answerable', '?')} answerable, {metrics.get('n_unanswerable', '?')} unanswerable)"
    parts = [f"# {_md_cell(title)}", "", counts, ""]
    if meta:
        parts += [_md_table(["Run", ""], [[k, _meta_value(v)] for k, v in meta.items()]), ""]
    parts += ["## Headline metrics", "", _md_table(["Metric", "Value"], t["headline"]), ""]
    group_header = ["Group", *(label(k) for k in GROUP_KEYS)]
    parts += ["## By kind", "", _md_table(group_header, t["by_kind"]), ""]
    parts += ["## By language", "", _md_table(group_header, t["by_lang"]), ""]
    parts += ["## Latency", "", _md_table(["Metric", "Value"], t["latency"]), ""]
    shown, n_worst = pick_samples(rows)
    parts += [
        "## Sample predictions",
        "",
        f"Rows marked ✗ ({n_worst}) are the worst: hallucinations first, then lowest F1.",
        "",
        _md_table(
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
        parts += ["## Notes", "", *(f"- {_md_cell(n)}" for n in metrics["notes"]), ""]
    parts += [
        "Units: scores and rates are percentages 0-100; semantic similarity is a mean cosine; latency in seconds."
    ]
    return "\n".join(parts) + "\n"


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
        body.append(_html_table(["Run", ""], [[k, _meta_value(v)] for k, v in meta.items()]))
    cards = []
    for k in HEADLINE[:3] + ["semantic_similarity", "refusal_accuracy", "hallucination_rate"]:
        cards.append(
            f'<div class="card"><div class="v">{esc(format_metric(k, metrics.get(k)))}</div>'
            f'<div class="k">{esc(label(k))}</div></div>'
        )
    body += ["<h2>Headline metrics</h2>", f'<div class="cards">{"".join(cards)}</div>', "<p></p>"]
    body.append(_html_table(["Metric", "Value"], t["headline"]))
    chart = bar_chart(
        [chart_label(k) for k in CHART_KEYS],
        {"value": [metrics.get(k) for k in CHART_KEYS]},
        "Main metrics (%), ↓ lower is better",
    )
    body.append(f'<p><img alt="bar chart of the main metrics" src="{chart}"></p>')
    group_header = ["Group", *(label(k) for k in GROUP_KEYS)]
    for name, heading in (("by_kind", "By kind"), ("by_lang", "By language")):
        body += [f"<h2>{heading}</h2>", _html_table(group_header, t[name])]
        groups = metrics.get(name) or {}
        if len(groups) > 1:
            keys = ["exact_match", "f1", "hallucination_rate"]
            uri = bar_chart(
                list(groups),
                {chart_label(k): [s.get(k) for s in groups.values()] for k in keys},
                f"{heading} (%)",
            )
            body.append(f'<p><img alt="{esc(heading)} chart" src="{uri}"></p>')
    body += ["<h2>Latency</h2>", _html_table(["Metric", "Value"], t["latency"])]
    lat = [float(r["latency_s"]) for r in rows if r.get("latency_s") is not None]
    if len(lat) > 1:
        uri = _histogram(lat, "Per-example latency (wall time of its generate call)", "seconds")
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
        _html_table(
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
    return html_page(title, "\n".join(body))


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
