"""Flat context-question-answer records ("cqa"): one record per question, in JSON, JSONL or CSV.

A record has a context (a string; aliases "passage", "document", "paragraph", "knowledge") or
contexts (a list; aliases "passages", "documents", "ctxs"; items may be strings or objects with
"text"), a "question" (alias "query"), and an "answer" (string) or "answers" (list of strings,
or an object {"text": [...]} as Hugging Face SQuAD columns store it). Optional: "id", a split
key ("group", "title", "doc_id"), "kind", and "answerable" / "is_impossible".

An absent or empty answer means unanswerable, unless "answerable" says true (an error then).
Unknown fields are ignored: real exports carry many. CSV cells named "contexts" / "answers"
may hold a JSON list. Hugging Face rows (`hub.py`) go through the same `example_from_record`.
"""

from __future__ import annotations

import json
from typing import Any

from ragtune.data.source import EmptyQuestion, Record, context_group
from ragtune.example import DataError, Example

CONTEXT_KEYS = (
    "contexts",
    "context",
    "passages",
    "passage",
    "documents",
    "document",
    "ctxs",
    "paragraph",
    "knowledge",
)
QUESTION_KEYS = ("question", "query")
ANSWER_KEYS = ("answers", "answer")
ID_KEYS = ("id", "qid", "question_id", "_id")
GROUP_KEYS = ("group", "title", "doc_id", "document_id")

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def first_key(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of `keys` present with a non-None value."""
    return next((k for k in keys if obj.get(k) is not None), None)


def _maybe_json_list(value: Any) -> Any:
    # CSV has no lists; a cell like ["a", "b"] in a plural column is read as one.
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, list) and all(isinstance(v, str) for v in parsed):
            return parsed
    return value


def _dedupe(texts: list[str]) -> list[str]:
    seen: set[str] = set()
    return [t for t in texts if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


def answer_texts(value: Any, where: str, field: str) -> list[str]:
    """Answers from a string, a list of strings / {"text": ...} objects, or {"text": [...]}.

    Blank answers are dropped and repeats removed (SQuAD lists the same span once per annotator).
    """
    value = _maybe_json_list(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict) and "text" in value:
        return answer_texts(value["text"], where, field)
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                item = item["text"]
            if not isinstance(item, str):
                raise DataError(
                    f'{where}: field "{field}[{i}]" must be a string or an object with "text"'
                )
            if item.strip():
                out.append(item.strip())
        return _dedupe(out)
    raise DataError(f'{where}: field "{field}" must be a string or a list of strings')


def context_texts(value: Any, where: str, field: str) -> list[str]:
    value = _maybe_json_list(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                item = item.get("text", item.get("content"))
            if not isinstance(item, str):
                raise DataError(
                    f'{where}: field "{field}[{i}]" must be a string or an object with "text"'
                )
            out.append(item)
        return out
    raise DataError(f'{where}: field "{field}" must be a string or a list of strings')


def question_text(obj: dict[str, Any], where: str, keys: tuple[str, ...] = QUESTION_KEYS) -> str:
    key = first_key(obj, keys)
    if key is None:
        raise DataError(f'{where}: field "{keys[0]}" is missing')
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(f'{where}: field "{key}" must be a string, got {type(value).__name__}')
    if not value.strip():
        raise EmptyQuestion(where, key)
    return value.strip()


def flag(value: Any, where: str, field: str) -> bool | None:
    """A true/false field; CSV cells spell it as text. None when absent or blank."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if not v:
            return None
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise DataError(f'{where}: field "{field}" must be true or false, got {value!r}')


def answerability(obj: dict[str, Any], answers: list[str], where: str, answer_key: str) -> bool:
    """Explicit "answerable" / "is_impossible" wins; otherwise answerable iff there is an answer."""
    answerable = flag(obj.get("answerable"), where, "answerable")
    impossible = flag(obj.get("is_impossible"), where, "is_impossible")
    if answerable is None and impossible is not None:
        answerable = not impossible
    if answerable is None:
        return bool(answers)
    if answerable and not answers:
        raise DataError(
            f'{where}: field "{answer_key}" is empty but the record says it is answerable'
        )
    return answerable


def example_from_record(rec: Record, id_prefix: str) -> Example:
    obj, where = rec.obj, rec.where
    question = question_text(obj, where)
    ckey = first_key(obj, CONTEXT_KEYS)
    if ckey is None:
        raise DataError(
            f'{where}: field "context" is missing (also accepted: {", ".join(CONTEXT_KEYS)})'
        )
    contexts = context_texts(obj[ckey], where, ckey)
    akey = first_key(obj, ANSWER_KEYS) or "answer"
    answers = answer_texts(obj.get(akey), where, akey)
    answerable = answerability(obj, answers, where, akey)
    id_key, group_key = first_key(obj, ID_KEYS), first_key(obj, GROUP_KEYS)
    ex_id = str(obj[id_key]).strip() if id_key else ""
    group = str(obj[group_key]).strip() if group_key else ""
    return Example(
        id=ex_id or f"{id_prefix}-{rec.key}",
        question=question,
        contexts=contexts,
        # Plausible-but-wrong spans of unanswerable questions are not answers.
        answers=answers if answerable else [],
        answerable=answerable,
        group=group or context_group(contexts),
        kind=str(obj.get("kind") or ""),
    )
