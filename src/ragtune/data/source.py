"""Raw records read from an input file, each carrying its location for error messages.

The format importers (`squad`, `records`, `chat`, `hub`) read files through these helpers and
turn each `Record` into an `Example`. Anything malformed raises `DataError` naming the file, the
line (JSONL, CSV) or record path (JSON) and the field:

    train.jsonl:17: field "question" is empty
    squad.json: data[3].paragraphs[0].qas[2]: field "question" is missing

`convert_all` keeps going after a bad record so one run reports the first few problems at once.
Blank questions are errors too, unless the caller asks to skip them (real data sets have a few:
CMRC 2018 does), in which case they are counted with their locations like other skips.
Input files are only ever opened for reading.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragtune.example import DataError, Example

MAX_ERRORS_SHOWN = 10


@dataclass
class Record:
    obj: dict[str, Any]
    """The raw record (a JSON object or a CSV row keyed by its header)."""
    where: str
    """Its location for messages: "file:line" or "file: data[3]"."""
    key: str
    """Stable position used to make an id when the record has none (line number or index)."""


class Skip(Exception):
    """Raised by a converter for a well-formed record that is not grounded QA; counted by reason."""

    def __init__(self, reason: str, where: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason, self.where = reason, where


class EmptyQuestion(DataError):
    """A blank question: an error, or a counted skip when the caller asks to skip them."""

    def __init__(self, where: str, field: str) -> None:
        super().__init__(f'{where}: field "{field}" is empty')
        self.where = where


EMPTY_QUESTION = "empty question"


@dataclass
class Skipped:
    """Records left out on purpose: a count per reason and the first few locations of each."""

    counts: Counter[str] = field(default_factory=Counter)
    where: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        shown = self.where.setdefault(reason, [])
        if len(shown) < MAX_ERRORS_SHOWN:
            shown.append(where)


def read_text(path: Path) -> str:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}): {e.reason}") from None


def parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg} (column {e.colno})") from None


def jsonl_records(path: Path, text: str) -> list[Record]:
    """One record per non-blank line; each must be a JSON object."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}")
        out.append(Record(obj, f"{path}:{i}", str(i)))
    return out


def json_records(path: Path, obj: Any) -> list[Record]:
    """Records of a JSON file holding a list of objects, or an object with a "data" list."""
    prefix = ""
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj, prefix = obj["data"], "data"
    if not isinstance(obj, list):
        raise DataError(
            f'{path}: expected a JSON list of records (or an object with a "data" list), '
            f"got {type(obj).__name__}"
        )
    out = []
    for i, item in enumerate(obj):
        where = f"{path}: {prefix}[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
        out.append(Record(item, where, str(i)))
    return out


def csv_records(path: Path, text: str) -> list[Record]:
    """Rows keyed by the header row; `where` is the row's first line (quoted cells may span lines)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # strict: an unbalanced quote is an error, not a cell that swallows the rows after it
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty CSV file (no header row)") from None
    except csv.Error as e:
        raise DataError(f"{path}:1: malformed CSV header: {e}") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(f"{path}:1: the header row is empty")
    out = []
    start = reader.line_num + 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                # A lost cell would shift the answer into another column, or leave it empty
                # and make the example unanswerable: never guess which.
                raise DataError(
                    f"{path}:{line}: {len(row)} cells but the header has {len(header)} columns"
                    + (
                        " (a cell missing, or a comma inside an unquoted cell?)"
                        if len(row) < len(header)
                        else ""
                    )
                )
            obj = {h: cell for h, cell in zip(header, row, strict=False) if h}
            out.append(Record(obj, f"{path}:{line}", str(line)))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
    return out


def context_group(contexts: list[str]) -> str:
    """A short stable hash of the context text: the split key when the source names no article."""
    text = "\n\n".join(" ".join(c.split()) for c in contexts)
    return "ctx-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def convert_all(
    items: Iterable[Any],
    convert: Callable[[Any], Example],
    skipped: Skipped,
    source: str,
    skip_empty_questions: bool = False,
) -> list[Example]:
    """Convert every item, collecting DataErrors so the message lists the first few problems.

    Records a converter rejects with `Skip`, and blank questions when `skip_empty_questions`,
    are counted in `skipped` instead.
    """
    examples: list[Example] = []
    errors: list[str] = []
    for item in items:
        try:
            examples.append(convert(item))
        except EmptyQuestion as e:
            if not skip_empty_questions:
                errors.append(str(e))
            else:
                skipped.add(EMPTY_QUESTION, e.where)
        except Skip as s:
            skipped.add(s.reason, s.where)
        except DataError as e:
            errors.append(str(e))
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = len(errors) - len(shown)
        tail = f"\n... and {more} more problems in {source}" if more else ""
        raise DataError("\n".join(shown) + tail)
    return examples
