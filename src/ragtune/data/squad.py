"""Import SQuAD-layout JSON: SQuAD v1.1 / v2.0 and CMRC 2018, which uses the same layout.

    {"data": [{"title": ..., "paragraphs": [{"context": ..., "qas": [
        {"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": ...}],
         "is_impossible": false}]}]}]}

v2.0 marks unanswerable questions with "is_impossible": true; their "plausible_answers" are
deliberately wrong spans and are never used as answers. v1.1 has no "is_impossible": a question
is answerable when it has answers. The split key (`group`) is the article title, else the
article id (CMRC), else the paragraph id, else a hash of the context, so every question on one
article stays on one side of a train/eval split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragtune.data.records import answer_texts, flag, question_text
from ragtune.data.source import Skipped, context_group, convert_all
from ragtune.example import DataError, Example


def looks_like_squad(obj: Any) -> bool:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list) or not obj["data"]:
        return False
    first = obj["data"][0]
    return isinstance(first, dict) and "paragraphs" in first


def _list_field(obj: Any, key: str, where: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise DataError(f'{where}: field "{key}" is missing')
    value = obj[key]
    if not isinstance(value, list):
        raise DataError(f'{where}: field "{key}" must be a list, got {type(value).__name__}')
    return value


def _name(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return str(value).strip() if value is not None else ""


# One question, with what it inherits from its paragraph and article.
_Item = tuple[dict[str, Any], str, str, str, str]  # (qa, where, context, group, id fallback)


def _questions(path: Path, obj: Any) -> Iterator[_Item]:
    """Walk data[].paragraphs[].qas[]; structural errors (not per-question ones) raise at once."""
    for a, article in enumerate(_list_field(obj, "data", str(path))):
        a_where = f"{path}: data[{a}]"
        paragraphs = _list_field(article, "paragraphs", a_where)
        article_key = _name(article, "title") or _name(article, "id")
        for p, para in enumerate(paragraphs):
            p_where = f"{a_where}.paragraphs[{p}]"
            qas = _list_field(para, "qas", p_where)
            context = para.get("context")
            if not isinstance(context, str):
                missing = "context" not in para
                raise DataError(
                    f'{p_where}: field "context" is missing'
                    if missing
                    else f'{p_where}: field "context" must be a string'
                )
            group = article_key or _name(para, "id") or context_group([context])
            for q, qa in enumerate(qas):
                yield qa, f"{p_where}.qas[{q}]", context, group, f"{path.stem}-{a}-{p}-{q}"


def _convert(item: _Item) -> Example:
    qa, where, context, group, fallback_id = item
    if not isinstance(qa, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(qa).__name__}")
    question = question_text(qa, where, ("question",))
    impossible = flag(qa.get("is_impossible"), where, "is_impossible")
    answers = [] if impossible else answer_texts(qa.get("answers"), where, "answers")
    if impossible is False and not answers:
        raise DataError(f'{where}: field "answers" is empty but "is_impossible" is false')
    return Example(
        id=_name(qa, "id") or fallback_id,
        question=question,
        contexts=[context],
        answers=answers,
        answerable=bool(answers),
        group=group,
    )


def load(
    path: Path, obj: Any, skipped: Skipped, skip_empty_questions: bool = False
) -> list[Example]:
    examples = convert_all(
        _questions(path, obj), _convert, skipped, str(path), skip_empty_questions
    )
    if not examples and not skipped.counts:
        raise DataError(f"{path}: no questions found under data[].paragraphs[].qas[]")
    return examples
