"""The one canonical QA example every importer produces and every stage consumes.

Stored as JSONL (one example per line) by `ragtune data prepare`; the importers read it back
(format `canonical`) through `example_from_dict`, which reports errors as `file:line: field "x" ...`.
A leaf module: it imports nothing of ragtune but `atomic` and `errors`, so every stage can share it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ragtune import atomic
from ragtune.errors import RagtuneError


class DataError(RagtuneError):
    """Malformed input data; the message names the file, the line (or record) and the field."""


@dataclass
class Example:
    id: str
    """Unique id within a data set (importers make one when the source has none)."""
    question: str
    """The user's question."""
    contexts: list[str]
    """Retrieved passages the answer must come from (one or more)."""
    answers: list[str] = field(default_factory=list)
    """Acceptable gold answers (several for SQuAD-style data); empty when unanswerable."""
    answerable: bool = True
    """False when the contexts do not contain the answer: the model should refuse."""
    group: str = ""
    """Split key (article, document or context hash): examples sharing it stay on one side."""
    kind: str = ""
    """Optional category used to break metrics down (e.g. "counterfactual")."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def answer(self) -> str:
        """The training target: the first gold answer ("" when unanswerable)."""
        return self.answers[0] if self.answers else ""


REQUIRED_FIELDS = ("id", "question", "contexts")
FIELDS = frozenset(f.name for f in fields(Example))  # a canonical record has these keys only


def example_from_dict(obj: Any, where: str) -> Example:
    """Validate one canonical record; `where` is "file:line" for error messages."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in REQUIRED_FIELDS:
        if key not in obj:
            raise DataError(f'{where}: field "{key}" is missing')
    unknown = set(obj) - FIELDS
    if unknown:
        raise DataError(f'{where}: unknown field "{sorted(unknown)[0]}"')
    if not isinstance(obj["question"], str) or not obj["question"].strip():
        raise DataError(f'{where}: field "question" is empty')
    contexts = obj["contexts"]
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise DataError(f'{where}: field "contexts" must be a list of strings')
    answers = obj.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DataError(f'{where}: field "answers" must be a list of strings')
    answerable = obj.get("answerable", bool(answers))
    if not isinstance(answerable, bool):
        raise DataError(f'{where}: field "answerable" must be true or false')
    if answerable and not answers:
        raise DataError(f'{where}: field "answers" is empty but "answerable" is true')
    return Example(
        id=str(obj["id"]),
        question=obj["question"],
        contexts=contexts,
        answers=answers,
        answerable=answerable,
        group=str(obj.get("group", "")),
        kind=str(obj.get("kind", "")),
    )


def write_jsonl(path: str | Path, examples: list[Example]) -> int:
    return atomic.write_jsonl(path, (e.to_dict() for e in examples))
