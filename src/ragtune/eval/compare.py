"""Side-by-side comparison of eval runs (base vs tuned, or several adapters).

Each run folder holds the `metrics.json` that `ragtune eval` wrote. The first run is the
baseline: every other column also gets its delta against it (percentage points for rates).
Prints a table; with `out` set it also writes compare.md, compare.html (grouped bar chart,
self-contained) and compare.json:

    ragtune compare runs=[runs/base,runs/tuned] out=runs/compare
    result = run(CompareConfig(runs=["runs/base", "runs/tuned"]))
    print(format_table(result))
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.errors import RagtuneError
from ragtune.eval.metrics import LOWER_IS_BETTER, METRIC_INFO, NEUTRAL, SPEED_KEYS
from ragtune.eval.report import CHART_KEYS, chart_label, format_metric, label
from ragtune.html import bar_chart, md_cell, page

# Top-level rows in this order; by_kind / by_lang rows follow as "by_kind.<kind>.<metric>".
TOP_KEYS = [
    "n",
    "n_answerable",
    "n_unanswerable",
    "exact_match",
    "f1",
    "rouge_l",
    "answerable_em",
    "answerable_f1",
    "answerable_rouge_l",
    "semantic_similarity",
    "answer_in_context_rate",
    "refusal_accuracy",
    "false_refusal_rate",
    "refusals_in_words",
    "hallucination_rate",
    *SPEED_KEYS,
    "retrieval_miss_rate",
    "citation_accuracy",
    "judge_faithfulness",
    "judge_correctness",
    "judge_style",
    "judge_failures",
    "judge_by_rule",
]
GROUP_METRICS = ["exact_match", "f1", "hallucination_rate"]
COUNT_KEYS = frozenset(
    {"n", "n_answerable", "n_unanswerable", "judge_by_rule"}
)  # neither better nor worse


class CompareError(RagtuneError):
    """A run folder cannot be compared; the message names the folder."""


@dataclass
class CompareConfig:
    runs: list[str] = field(default_factory=list)
    """Run folders, each holding the metrics.json written by `ragtune eval`; the first is the baseline."""
    out: str | None = None
    """Folder for compare.md, compare.html and compare.json; None only prints the table."""
    labels: list[str] = field(default_factory=list)
    """Column names, one per run; empty: the label in metrics.json, else model (+ adapter), else folder name."""

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(
                "runs: give at least one eval run folder (ragtune compare DIR [DIR...])"
            )
        if self.labels and len(self.labels) != len(self.runs):
            raise ValueError(
                f"labels: {len(self.labels)} names for {len(self.runs)} runs; give one per run"
            )


def load_metrics(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise CompareError(
            f"{folder}: no metrics.json in this folder (run `ragtune eval` on it first)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected a JSON object of metrics")
    return data


def run_label(folder: str, metrics: dict[str, Any]) -> str:
    """Column name: label, else model (+ adapter), else the folder's name."""
    if metrics.get("label"):
        return str(metrics["label"])
    if metrics.get("model"):
        name = Path(str(metrics["model"])).name
        return f"{name} + {Path(str(metrics['adapter'])).name}" if metrics.get("adapter") else name
    return Path(folder).resolve().name


def _keys(all_metrics: list[dict[str, Any]]) -> list[str]:
    keys = [k for k in TOP_KEYS if any(m.get(k) is not None for m in all_metrics)]
    for section in ("by_kind", "by_lang"):
        groups = sorted({g for m in all_metrics for g in (m.get(section) or {})})
        keys += [f"{section}.{g}.{k}" for g in groups for k in GROUP_METRICS]
    return keys


def _get(metrics: dict[str, Any], key: str) -> Any:
    if key.startswith(("by_kind.", "by_lang.")):
        section, rest = key.split(".", 1)
        group, metric = rest.rsplit(".", 1)
        return ((metrics.get(section) or {}).get(group) or {}).get(metric)
    return metrics.get(key)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare(labels: list[str], all_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of (key, values per run, delta of each run vs the first) for the given metrics."""
    rows = []
    for key in _keys(all_metrics):
        values = [_get(m, key) for m in all_metrics]
        if all(v is None for v in values):
            continue  # reported by no run (e.g. a group metric older runs lack)
        base = values[0]
        deltas = [v - base if _num(v) and _num(base) and i else None for i, v in enumerate(values)]
        rows.append({"key": key, "label": row_label(key), "values": values, "deltas": deltas})
    return {"labels": labels, "rows": rows}


def row_label(key: str) -> str:
    if "." not in key:
        return label(key)
    section, rest = key.split(".", 1)
    group, metric = rest.rsplit(".", 1)
    return f"{label(metric)} [{'kind' if section == 'by_kind' else 'lang'} {group}]"


def format_delta(key: str, d: float | None) -> str:
    """Signed difference in the metric's unit; rates differ in percentage points (pp)."""
    if d is None:
        return ""
    unit = METRIC_INFO.get(key.rsplit(".", 1)[-1], ("", ""))[1]
    if unit == "%":
        return f"{d:+.1f} pp"
    if unit in ("cos", "s"):
        return f"{d:+.3f}" + (" s" if unit == "s" else "")
    if unit == "tok/s":
        return f"{d:+.1f} tok/s"
    return f"{d:+g}"


def _better(key: str, d: float | None) -> int:
    """+1 when the delta is an improvement, -1 when a regression, 0 otherwise."""
    metric = key.rsplit(".", 1)[-1]
    if d is None or d == 0 or metric in COUNT_KEYS or metric in NEUTRAL:
        return 0
    return (1 if d > 0 else -1) * (-1 if metric in LOWER_IS_BETTER else 1)


def _header(labels: list[str]) -> list[str]:
    head = ["Metric", labels[0]]
    for name in labels[1:]:
        head += [name, f"Δ {name}"]
    return head


def _cells(row: dict[str, Any]) -> list[str]:
    key, values, deltas = row["key"], row["values"], row["deltas"]
    cells = [format_metric(key, values[0])]
    for v, d in zip(values[1:], deltas[1:], strict=True):
        cells += [format_metric(key, v), format_delta(key, d)]
    return cells


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table for the terminal: metric rows, one column per run plus deltas."""
    head = _header(result["labels"])
    body = [[r["label"], *_cells(r)] for r in result["rows"]]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule, *(line(b) for b in body)])


def render_markdown(result: dict[str, Any]) -> str:
    head = _header(result["labels"])
    lines = ["# Run comparison", ""]
    lines += [
        f"- **{md_cell(n)}**: `{md_cell(f)}`"
        for n, f in zip(result["labels"], result["runs"], strict=True)
    ]
    lines += [
        "",
        f"Deltas are against the first run ({md_cell(result['labels'][0])}); rates in percentage points.",
        "",
    ]
    lines += ["| " + " | ".join(md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += [
        "| " + " | ".join(md_cell(c) for c in [r["label"], *_cells(r)]) + " |"
        for r in result["rows"]
    ]
    return "\n".join(lines) + "\n"


def render_html(result: dict[str, Any]) -> str:
    esc = html.escape
    labels = result["labels"]
    body = [
        "<h1>Run comparison</h1>",
        f'<p class="sub">Baseline: {esc(labels[0])}. Deltas in percentage points for rates; green is better.</p>',
    ]
    body.append(
        "<ul>"
        + "".join(
            f"<li><b>{esc(n)}</b>: <code>{esc(f)}</code></li>"
            for n, f in zip(labels, result["runs"], strict=True)
        )
        + "</ul>"
    )
    by_key = {r["key"]: r for r in result["rows"]}
    chart_keys = [k for k in CHART_KEYS if k in by_key]
    if chart_keys:
        uri = bar_chart(
            [chart_label(k) for k in chart_keys],
            {name: [by_key[k]["values"][i] for k in chart_keys] for i, name in enumerate(labels)},
            "Main metrics by run (%), ↓ lower is better",
        )
        body.append(f'<p><img alt="grouped bar chart of the main metrics by run" src="{uri}"></p>')
    head = "".join(f"<th>{esc(h)}</th>" for h in _header(labels))
    table = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for r in result["rows"]:
        cells = [f"<td>{esc(r['label'])}</td>"]
        texts = _cells(r)
        for j, text in enumerate(texts):
            cls = "num"
            if j % 2 == 0 and j:  # delta columns
                cls += {1: " up", -1: " down", 0: ""}[_better(r["key"], r["deltas"][j // 2])]
            cells.append(f'<td class="{cls}">{esc(text)}</td>')
        table.append(f"<tr>{''.join(cells)}</tr>")
    table.append("</tbody></table>")
    body.append("\n".join(table))
    return page("Run comparison: " + " vs ".join(labels), "\n".join(body))


def run(cfg: CompareConfig) -> dict[str, Any]:
    """Load every run's metrics.json, build the comparison, write it when `cfg.out` is set."""
    all_metrics = [load_metrics(f) for f in cfg.runs]
    labels = list(cfg.labels) or [
        run_label(f, m) for f, m in zip(cfg.runs, all_metrics, strict=True)
    ]
    seen: dict[str, int] = {}
    for i, name in enumerate(labels):  # keep columns distinguishable when two runs share a label
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            labels[i] = f"{name} ({seen[name]})"
    result = compare(labels, all_metrics)
    result["runs"] = [str(f) for f in cfg.runs]
    if cfg.out is not None:
        out = Path(cfg.out)
        atomic.write_json(out / "compare.json", result)
        atomic.write_text(out / "compare.md", render_markdown(result))
        atomic.write_text(out / "compare.html", render_html(result))
    return result


Config = CompareConfig


def show(result: dict[str, Any]) -> None:
    print(format_table(result))
