"""Import instruction and chat fine-tuning files: alpaca, sharegpt and openai `messages`.

These formats have no context field, so the context is found in the prompt:

- alpaca {"instruction", "input", "output"}: the question is the instruction and the context
  is the input; if the input itself holds "Context: ..." and "Question: ..." blocks, both come
  from it (the instruction is then a generic "answer from the context").
- sharegpt {"conversations": [{"from": "system"|"human"|"gpt", "value"}]} and openai
  {"messages": [{"role": "system"|"user"|"assistant", "content"}]}: the first user turn and the
  assistant reply after it are the question and the answer (later turns are ignored: they may
  lean on the earlier ones). The context is a "Context:" block in that user turn, else the
  system message (Azure "on your data" files carry the retrieved documents there), taking only
  the text after a "Context:"/"Documents:" marker when the system message has one.

Records with no context at all (plain instruction tuning) are not grounded QA: they are skipped
and counted, and importing fails only when every record would be skipped. An empty reply, or
one that declines (`prompt.is_refusal`), marks the example unanswerable, because these files
encode "the documents lack the answer" as a refusal sentence.
"""

from __future__ import annotations

import re
from typing import Any

from ragtune.data.records import first_key, question_text
from ragtune.data.source import EmptyQuestion, Record, Skip, context_group
from ragtune.example import DataError, Example
from ragtune.prompt.refusal import is_refusal

NO_CONTEXT = "no context (not grounded QA)"

_CONTEXT_MARK = re.compile(
    r"^[ \t#*]*(?:contexts?|passages?|(?:retrieved |reference )?documents?|knowledge|background"
    r"|上下文|背景|参考资料|资料|文章|段落)[ \t*]*[:：]",
    re.IGNORECASE | re.MULTILINE,
)
_QUESTION_MARK = re.compile(r"^[ \t#*]*(?:question|query|问题)[ \t*]*[:：]", re.I | re.M)

_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "bot": "assistant",
    "model": "assistant",
}


def split_context_block(text: str) -> tuple[str, str] | None:
    """(context, question) from text with a "Context:" block, or None when it has none.

    The question is the "Question:" block, else whatever text is outside the context block.
    """
    c = _CONTEXT_MARK.search(text)
    if c is None:
        return None
    q = _QUESTION_MARK.search(text)
    if q is not None and q.start() > c.start():
        context, question = text[c.end() : q.start()], text[q.end() :]
    elif q is not None:  # "Question: ... Context: ..."
        context, question = text[c.end() :], text[q.end() : c.start()]
    else:
        context, question = text[c.end() :], text[: c.start()]
    return context.strip(), question.strip()


def _after_marker(text: str) -> str:
    c = _CONTEXT_MARK.search(text)
    return text[c.end() :].strip() if c else text.strip()


def _answer(text: str) -> tuple[list[str], bool]:
    text = text.strip()
    if not text or is_refusal(text):
        return [], False
    return [text], True


def _common(rec: Record, question: str, context: str, answer: str, id_prefix: str) -> Example:
    answers, answerable = _answer(answer)
    group_key = first_key(rec.obj, ("group", "title", "doc_id"))
    return Example(
        id=str(rec.obj.get("id") or "").strip() or f"{id_prefix}-{rec.key}",
        question=question,
        contexts=[context],
        answers=answers,
        answerable=answerable,
        group=str(rec.obj[group_key]).strip() if group_key else context_group([context]),
        kind=str(rec.obj.get("kind") or ""),
    )


def _string(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f'{where}: field "{key}" must be a string')
    return value


def alpaca_example(rec: Record, id_prefix: str) -> Example:
    obj, where = rec.obj, rec.where
    if "output" not in obj:
        raise DataError(f'{where}: field "output" is missing')
    output = _string(obj, "output", where)
    source = _string(obj, "input", where)
    block = split_context_block(source)
    if block is not None and block[0] and block[1]:
        context, question = block
    else:
        question = question_text(obj, where, ("instruction",))
        context = source.strip()
    if not context:
        raise Skip(NO_CONTEXT, rec.where)
    return _common(rec, question, context, output, id_prefix)


def _content(value: Any, where: str) -> str:
    """Message content: a string, or OpenAI's list of parts [{"type": "text", "text": ...}]."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [
            p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") == "text"
        ]
        return "\n".join(p for p in parts if isinstance(p, str))
    if value is None:
        return ""
    raise DataError(f"{where} must be a string or a list of text parts")


# (role: system/user/assistant, text, index in the file's list for messages)
_Turn = tuple[str, str, int]


def _turns(obj: dict[str, Any], where: str, key: str, role_key: str, text_key: str) -> list[_Turn]:
    if key not in obj:
        raise DataError(f'{where}: field "{key}" is missing')
    turns = obj[key]
    if not isinstance(turns, list) or not turns:
        raise DataError(f'{where}: field "{key}" must be a non-empty list of messages')
    out = []
    for i, turn in enumerate(turns):
        loc = f'{where}: field "{key}[{i}]'
        if not isinstance(turn, dict):
            raise DataError(f'{loc}" must be an object')
        # Some sharegpt exports use role/content, some openai-like ones from/value.
        role = turn.get(role_key, turn.get("role", turn.get("from")))
        if not isinstance(role, str):
            raise DataError(f'{loc}.{role_key}" is missing')
        text = _content(
            turn.get(text_key, turn.get("content", turn.get("value"))), f'{loc}.{text_key}"'
        )
        if role.lower() in _ROLES:  # tool / function turns carry no QA
            out.append((_ROLES[role.lower()], text, i))
    return out


def _chat_example(
    rec: Record, turns: list[_Turn], key: str, id_prefix: str, system: str
) -> Example:
    where = rec.where
    roles = [r for r, _, _ in turns]
    if "user" not in roles:
        raise DataError(f'{where}: field "{key}" has no user message')
    u = roles.index("user")
    a = next((i for i in range(u + 1, len(turns)) if roles[i] == "assistant"), None)
    if a is None:
        raise DataError(
            f'{where}: field "{key}" has no assistant reply after the first user message'
        )
    system = system or next((t for r, t, _ in turns[:u] if r == "system"), "")
    user = turns[u][1]
    block = split_context_block(user)
    if block is not None and block[0]:
        context, question = block
    else:
        context, question = _after_marker(system), user.strip()
    if not question:
        raise EmptyQuestion(where, f"{key}[{turns[u][2]}]")
    if not context:
        raise Skip(NO_CONTEXT, rec.where)
    return _common(rec, question, context, turns[a][1], id_prefix)


def sharegpt_example(rec: Record, id_prefix: str) -> Example:
    turns = _turns(rec.obj, rec.where, "conversations", "from", "value")
    system = _string(rec.obj, "system", rec.where)  # LLaMA-Factory puts it beside the turns
    return _chat_example(rec, turns, "conversations", id_prefix, system)


def openai_example(rec: Record, id_prefix: str) -> Example:
    turns = _turns(rec.obj, rec.where, "messages", "role", "content")
    return _chat_example(rec, turns, "messages", id_prefix, "")
