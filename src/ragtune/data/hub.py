"""Import a Hugging Face data set by name: `hf:rajpurkar/squad_v2` or `hf:<name>:<config>`.

Needs the optional `datasets` package (`pip install 'ragtune[hf]'`) and network access (or a
data set already in the local datasets cache). Rows go through the flat-record importer, which
maps the SQuAD-style columns (context, question, answers {"text": [...]}, id, title); an empty
answer list marks an unanswerable question, as in squad_v2.
"""

from __future__ import annotations

import os
from typing import Any

from ragtune.data.records import example_from_record
from ragtune.data.source import Record, Skipped, convert_all
from ragtune.example import DataError, Example


def parse_name(spec: str) -> tuple[str, str | None]:
    """ "hf:name[:config]" or "name[:config]" -> (name, config)."""
    rest = spec[3:] if spec.startswith("hf:") else spec
    name, _, config = rest.strip().partition(":")
    if not name.strip():
        raise DataError(
            f'{spec!r}: no data set name; write "hf:<name>", e.g. "hf:rajpurkar/squad_v2"'
        )
    return name.strip(), (config.strip() or None)


def _load_dataset(name: str, config: str | None, split: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"hf:{name}: reading Hugging Face data sets needs the `datasets` package: "
            "pip install 'ragtune[hf]' (or download the data set and pass its file)"
        ) from None
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as e:  # the datasets library raises many kinds; all mean "could not load"
        offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
        hint = " (offline mode is set and it is not in the local cache)" if offline else ""
        raise DataError(f"hf:{name}: could not load split {split!r}{hint}: {e}") from None


def load(
    spec: str, split: str, skipped: Skipped, skip_empty_questions: bool = False
) -> list[Example]:
    name, config = parse_name(spec)
    if not split.strip():
        raise DataError(f"hf:{name}: the split name is empty (e.g. train, validation)")
    rows = _load_dataset(name, config, split)
    source = f"hf:{name}[{split}]"
    prefix = f"{name.rsplit('/', 1)[-1]}-{split}"
    records = (Record(dict(row), f"{source}[{i}]", str(i)) for i, row in enumerate(rows))
    return convert_all(
        records, lambda r: example_from_record(r, prefix), skipped, source, skip_empty_questions
    )
