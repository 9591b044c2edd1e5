"""The HTML kit shared by every page ragtune writes: eval reports, compare, model cards, and
(later) the serve web page. Self-contained on purpose: CSS is inline and charts are PNGs
(matplotlib's Agg canvas, no pyplot state) embedded as base64 data URIs, so a page needs
nothing from the network and can be mailed or archived as is.

Every text cell is HTML-escaped here; only a cell given as ("raw", markup) is passed through,
for markup the caller built itself.

    page("Report", "<h1>Report</h1>" + html_table(["Metric", "Value"], [["F1", "52.4%"]]))
    bar_chart(["EM", "F1"], {"base": [40.0, 52.4], "tuned": [55.0, 63.1]}, "Scores (%)")
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Sequence
from typing import Any

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
    return data_uri(fig)


def histogram(values: Sequence[float], title: str, xlabel: str) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 2.8), dpi=110)
    ax = fig.add_subplot()
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color=PALETTE[0])
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return data_uri(fig)


def tradeoff_figure(
    points: Sequence[dict[str, Any]],
    chosen: float | None,
    title: str,
    applied: dict[str, Any] | None = None,
) -> Any:
    """Refusal accuracy against false refusals, one point per refusal threshold, the chosen
    threshold marked: the abstention trade-off of `ragtune.eval.calibrate.sweep` points.
    `applied`: the point per-language thresholds scored together, marked instead."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), dpi=110)
    ax = fig.add_subplot()
    xs = [p["false_refusal_rate"] or 0.0 for p in points]
    ys = [p["refusal_accuracy"] or 0.0 for p in points]
    ax.plot(xs, ys, ".-", color=PALETTE[0], label="thresholds")
    mark, label = applied, "per-language thresholds"
    if mark is None and chosen is not None and points:
        mark = min(points, key=lambda p: abs(p["threshold"] - chosen))
        label = f"threshold {chosen:.3f}"
    if mark is not None:
        ax.plot(
            [mark["false_refusal_rate"] or 0.0],
            [mark["refusal_accuracy"] or 0.0],
            "o",
            color=PALETTE[1],
            markersize=9,
            label=f"{label}: F1 {mark['f1']:.1f}",
        )
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("false refusals, answerable (%)")
    ax.set_ylabel("refusal accuracy, unanswerable (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def page(title: str, body: str) -> str:
    """A complete HTML document with the shared inline CSS; `title` is escaped here."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


def cut(text: str, n: int = CELL_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def md_cell(text: Any) -> str:
    return html.escape(cut(str(text)), quote=False).replace("|", "\\|")


def md_table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def html_table(
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
            elif isinstance(c, (int, float)) or looks_numeric(c):
                cells.append(f'<td class="num">{html.escape(str(c))}</td>')
            else:
                cells.append(f"<td>{html.escape(cut(str(c)))}</td>")
        out.append(f"<tr{cls}>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def looks_numeric(c: Any) -> bool:
    s = str(c).strip().rstrip("%").removesuffix(" s").removesuffix(" tok/s").lstrip("+-")
    return s == "—" or s.replace(".", "", 1).isdigit()
