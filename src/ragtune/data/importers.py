"""Load QA data in any supported format into canonical `Example`s, detecting the format.

    examples = load_examples("train.json")                  # format detected
    examples = load_examples("faq.csv", format="cqa-csv")
    examples = load_examples("hf:rajpurkar/squad_v2", hf_split="validation")
    result = import_data("chats.jsonl")   # also says which format and what was skipped

Formats (see each module's docstring for the fields it reads):

| name | file | module |
|---|---|---|
| `squad` | SQuAD v1/v2 or CMRC 2018 JSON (`data[].paragraphs[].qas[]`) | `squad.py` |
| `cqa-json`, `cqa-jsonl`, `cqa-csv` | flat context/question/answer records | `records.py` |
| `alpaca` | instruction/input/output (JSON list or JSONL) | `chat.py` |
| `sharegpt` | `conversations` of system/human/gpt turns | `chat.py` |
| `openai` | `messages` of system/user/assistant (Azure "on your data" style) | `chat.py` |
| `canonical` | ragtune's own JSONL (`example.py`) | `example.py` |
| `hf:<name>[:<config>]` | a Hugging Face data set (needs `datasets` and network) | `hub.py` |

Detection: `.csv`/`.tsv` are cqa-csv; `.jsonl`/`.ndjson` are read line by line; anything else is
parsed as JSON, falling back to JSONL when that fails (a common mislabelling). A JSON object
with `data[].paragraphs` is SQuAD; otherwise the fields of the first record decide. Input files
are only read. Ids, when absent, are `<file stem>-<line>` (JSONL/CSV) or `<file stem>-<index>`.

Malformed records are errors naming the file, line or record path, and field; all bad records
of a file are listed in one error (the first ten). Records that are well-formed but not
grounded QA (alpaca/chat records without any context) are skipped and counted in
`Imported.skipped`; blank questions are errors unless `skip_empty_questions` is set, which
`data check` and `data prepare` do so that a few bad rows in a large set do not stop them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.data import chat, hub, squad
from ragtune.data.records import CONTEXT_KEYS, QUESTION_KEYS, example_from_record
from ragtune.data.source import (
    EmptyQuestion,
    Record,
    Skipped,
    convert_all,
    csv_records,
    json_records,
    jsonl_records,
    parse_json,
    read_text,
)
from ragtune.example import FIELDS, REQUIRED_FIELDS, DataError, Example, example_from_dict

# The one list of format names: errors, `--help` texts and the docs of every stage's
# `format` key read it from here.
FORMATS = {
    "auto": "detected from the file",
    "squad": "SQuAD v1/v2, CMRC 2018",
    "cqa-json": "context/question/answer records",
    "cqa-jsonl": "the same, one per line",
    "cqa-csv": "the same, as CSV",
    "alpaca": "instruction/input/output",
    "sharegpt": "conversations",
    "openai": "messages JSONL",
    "canonical": "ragtune JSONL",
    "hf:<name>": "a Hugging Face data set, online",
}
FORMAT_HELP = "Formats: " + ", ".join(f"{k} ({v})" for k, v in FORMATS.items()) + "."


def _canonical(rec: Record) -> Example:
    question = rec.obj.get("question")
    if isinstance(question, str) and not question.strip():
        raise EmptyQuestion(rec.where, "question")  # so it can be skipped like in other formats
    return example_from_dict(rec.obj, rec.where)


# format -> converter of one record; `prefix` is the file stem for made-up ids.
_CONVERTERS: dict[str, Callable[[Record, str], Example]] = {
    "cqa": example_from_record,
    "alpaca": chat.alpaca_example,
    "sharegpt": chat.sharegpt_example,
    "openai": chat.openai_example,
    "canonical": lambda rec, prefix: _canonical(rec),
}


@dataclass
class Imported:
    examples: list[Example]
    """The canonical examples, in file order."""
    format: str
    """The format used (the detected one when "auto" was asked), e.g. "squad" or "cqa-jsonl"."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Records left out on purpose, counted by reason (no context; empty question if asked)."""
    skipped_where: dict[str, list[str]] = field(default_factory=dict)
    """The first few locations ("file:line") of the skipped records, per reason."""


def _record_format(obj: dict[str, Any]) -> str | None:
    """The family a record belongs to, from its field names."""
    keys = set(obj)
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if set(REQUIRED_FIELDS) <= keys <= FIELDS:
        return "canonical"
    if "instruction" in keys:
        return "alpaca"
    if keys & set(QUESTION_KEYS) and keys & set(CONTEXT_KEYS):
        return "cqa"
    return None


def _container(path: Path, fmt: str) -> str:
    """How to read the file: "json", "jsonl", "csv", or "sniff" (JSON, else JSONL)."""
    if fmt in ("squad", "cqa-json"):
        return "json"
    if fmt == "cqa-jsonl":
        return "jsonl"
    suffix = path.suffix.lower()
    if fmt == "cqa-csv" or suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "sniff"


def _read(path: Path, container: str) -> tuple[str, Any]:
    """(container actually used, parsed content: a JSON value or a list of Records)."""
    text = read_text(path)
    if container == "csv":
        return "csv", csv_records(path, text)
    if container == "jsonl":
        return "jsonl", jsonl_records(path, text)
    try:
        return "json", json.loads(text)
    except json.JSONDecodeError:
        if container == "json":
            return "json", parse_json(path, text)  # raises with the line of the problem
    # Not one JSON value: JSONL when its first line is a JSON object, else report the JSON error.
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        is_jsonl = isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        is_jsonl = False
    if not is_jsonl:
        parse_json(path, text)
    return "jsonl", jsonl_records(path, text)


def _resolve_hf(path: str, fmt: str) -> str | None:
    """The hf:<name> spec when the data is a Hugging Face data set, else None."""
    if fmt == "hf":
        return path if path.startswith("hf:") else f"hf:{path}"
    if fmt.startswith("hf:"):
        if path and path != fmt and f"hf:{path}" != fmt:
            raise DataError(
                f"data {path!r} and format {fmt!r} disagree: give the data set once, "
                'as data "hf:<name>" (format auto) or format "hf:<name>"'
            )
        return fmt
    if fmt == "auto" and path.startswith("hf:"):
        return path
    return None


def _from_file(
    path: Path, fmt: str, skipped: Skipped, skip_empty_questions: bool
) -> tuple[list[Example], str]:
    """(examples, format name) from a local file."""
    if path.is_dir():
        raise DataError(f"{path}: is a folder; pass the data file")
    container, content = _read(path, _container(path, fmt))
    if container == "json" and fmt in ("auto", "squad") and squad.looks_like_squad(content):
        return squad.load(path, content, skipped, skip_empty_questions), "squad"
    if fmt == "squad":
        squad.load(path, content, skipped)  # not SQuAD-shaped: raises naming the missing field
    records: list[Record] = json_records(path, content) if container == "json" else content
    if not records:
        raise DataError(f"{path}: no records found")

    family = fmt.split("-")[0] if fmt != "auto" else _record_format(records[0].obj)
    if family is None:
        fields = ", ".join(sorted(records[0].obj)) or "none"
        raise DataError(
            f"{records[0].where}: cannot tell the data format from this record's fields "
            f"({fields}); pass format= one of: {', '.join(list(FORMATS)[1:])}"
        )
    convert = _CONVERTERS[family]
    examples = convert_all(
        records, lambda r: convert(r, path.stem), skipped, str(path), skip_empty_questions
    )
    return examples, f"cqa-{container}" if family == "cqa" else family


def import_data(
    path: str | Path,
    format: str = "auto",
    hf_split: str = "train",
    skip_empty_questions: bool = False,
) -> Imported:
    """Read `path` (or `hf:<name>`) in `format` ("auto" detects it) into canonical examples.

    A blank question is an error naming its line, unless `skip_empty_questions`: then such
    records are counted in `Imported.skipped` (as "empty question") with their locations.
    """
    fmt = format.strip()
    fmt = fmt if fmt.startswith("hf:") else fmt.lower()
    skipped = Skipped()
    spec = _resolve_hf(str(path), fmt)
    if spec is not None:
        examples, name = hub.load(spec, hf_split, skipped, skip_empty_questions), spec
    elif fmt not in FORMATS:
        raise DataError(f"unknown data format {format!r}; valid formats: {', '.join(FORMATS)}")
    else:
        examples, name = _from_file(Path(path), fmt, skipped, skip_empty_questions)
    if not examples:
        reasons = "; ".join(f"{n} {why}" for why, n in skipped.counts.items())
        raise DataError(f"{path}: no usable records ({reasons or 'the file has none'})")
    return Imported(examples, name, dict(skipped.counts), skipped.where)


def load_examples(path: str | Path, format: str = "auto", hf_split: str = "train") -> list[Example]:
    """Canonical examples from `path` in `format` ("auto" detects it; see the module docstring)."""
    return import_data(path, format, hf_split).examples
