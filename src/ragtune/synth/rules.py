"""QA pairs read off a document's structure, without a model. English and Chinese.

Rules, each yielding (question, answer, rule) where the answer is a span of the section:
- heading: a section's heading becomes a question and its lead sentence the answer.
  A heading that is a question is used as it is; "How to X" becomes "How do I X?"; any other
  heading asks what the section says about it ("关于X，文档是怎么说的？" in Chinese).
- definition: "X is/are/means/refers to Y." asks "What is X?" with Y as the answer;
  "X是Y。" / "X指Y。" asks "X是什么？".
- list: two or more list items under a heading ask what the list holds; the answer is the
  list as written.
- code: a fenced code block whose first line is a comment asks how to do what it says; the
  answer is the code after the comment.

    for q, a, rule in extract(section_text, heading=("Install",)): ...
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ragtune.text import language

_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]")
_EN_DEF = re.compile(
    r"^(?P<term>(?:The |An? )?[A-Z][\w\-]*(?: [\w\-]+){0,5}?) (?P<verb>is|are|means|refers to) "
    r"(?P<def>[^.]{3,200})\.$"
)
_ZH_DEF = re.compile(
    r"^(?P<term>[^，。、；：\s]{1,20}?)(?P<verb>是指|是|指)(?P<def>[^。]{2,120})。$"
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")
_FENCE = re.compile(r"^```[\w+-]*\s*\n(?P<body>.*?)^```", re.M | re.S)
_COMMENT = re.compile(r"^\s*(?:#|//|--|;)\s*(?P<text>\S.*?)\s*$")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(" ".join(text.split())) if len(s.strip()) > 3]


def heading_question(heading: str) -> str:
    h = heading.strip().rstrip(":：")
    if language(h) == "zh":
        return h if h.endswith(("？", "?")) else f"关于{h}，文档是怎么说的？"
    if h.endswith("?"):
        return h
    m = re.match(r"(?i)how to (.+)", h)
    if m:
        return f"How do I {m.group(1)}?"
    return f"What does the documentation say about {h}?"


def _prose(text: str) -> str:
    """The section without code blocks and list lines: where lead sentences come from."""
    text = _FENCE.sub("", text)
    return "\n".join(line for line in text.splitlines() if not _LIST_ITEM.match(line))


def extract(text: str, heading: tuple[str, ...] = ()) -> Iterator[tuple[str, str, str]]:
    prose = _prose(text)
    lead = sentences(prose)
    if heading and lead:
        yield heading_question(heading[-1]), lead[0], "heading"
    for s in lead:
        en = _EN_DEF.match(s)
        if en:
            term = re.sub(r"^(The|An?) ", "", en.group("term"))
            be = "are" if en.group("verb") == "are" else "is"
            yield f"What {be} {term}?", en.group("def").strip(), "definition"
            continue
        zh = _ZH_DEF.match(s)
        if zh and language(s) == "zh":
            yield f"{zh.group('term')}是什么？", zh.group("def").strip(), "definition"
    items = [line.rstrip() for line in text.splitlines() if _LIST_ITEM.match(line)]
    if heading and len(items) >= 2:
        block = _list_block(text)
        if block:
            h = heading[-1]
            q = (
                f"{h}包括哪些？"
                if language(h) == "zh"
                else f"What does the list under {h} include?"
            )
            yield q, block, "list"
    for m in _FENCE.finditer(text):
        lines = m.group("body").rstrip("\n").splitlines()
        c = _COMMENT.match(lines[0]) if lines else None
        code = "\n".join(lines[1:]).strip()
        if c and code:
            what = c.group("text").rstrip(".:")
            q = (
                f"如何{what}？"
                if language(what) == "zh"
                else f"How do I {what[0].lower() + what[1:]}?"
            )
            yield q, code, "code"


def _list_block(text: str) -> str:
    """The first run of consecutive list lines, as written (a span of the section)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _LIST_ITEM.match(line)), None)
    if start is None:
        return ""
    end = start
    while end + 1 < len(lines) and _LIST_ITEM.match(lines[end + 1]):
        end += 1
    return "\n".join(lines[start : end + 1]).strip() if end > start else ""
