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

# A sentence ends at . ! ? before a space or the end ("3.11" does not end one), or at 。！？.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_PRONOUNS = {
    "it",
    "this",
    "that",
    "there",
    "these",
    "those",
    "he",
    "she",
    "they",
    "we",
    "you",
    "i",
    "here",
}
_EN_DEF = re.compile(
    r"^(?P<term>(?:The |An? )?[A-Z][\w\-]*(?: [\w\-]+){0,5}?) (?P<verb>is|are|means|refers to) "
    r"(?P<def>[^.]{3,200})\.$"
)
_ZH_NOT_A_TERM = re.compile(r"[不也都就还才于请]$|^(这|那|它|他|她|我|你|于是|但|可)")
_ZH_DEF = re.compile(
    r"^(?P<term>[^，。、；：\s]{2,20}?)(?P<verb>是指|指的是|是)(?P<def>[^。]{2,120})。$"
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")
_FENCE = re.compile(r"^```[^\n]*\n(?P<body>.*?)^```", re.M | re.S)
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")  # a horizontal rule, not a list
_NOT_AN_INSTRUCTION = re.compile(r"^(!|include\b|define\b|pragma\b|-\*-|type:|noqa|pylint|eslint)")
_COMMENT = re.compile(r"^\s*(?:#|//|--|;)\s*(?P<text>\S.*?)\s*$")


def sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE_END.split(flat) if len(s.strip()) > 3]


def heading_question(heading: str, parent: str | None = None) -> str:
    """The question a heading asks. A generic sub-heading ("Support", "Installation") names
    its parent heading too, or every note's "Support" section would ask the same question."""
    h = heading.strip().rstrip(":：")
    p = (parent or "").strip().rstrip(":：")
    if h.endswith(("?", "？")):
        return h
    if language(h) == "zh":
        return f"关于{p + '的' if p else ''}{h}，文档是怎么说的？"
    m = re.match(r"(?i)how to (.+)", h)
    if m:
        return f"How do I {m.group(1)}?"
    return f"What does the documentation say about {h}{' in ' + p if p else ''}?"


def _prose(text: str) -> str:
    """The section without code blocks and list lines: where lead sentences come from."""
    text = _FENCE.sub("", text)
    return "\n".join(x for x in text.splitlines() if not _is_item(x) and not _RULE.match(x))


def extract(text: str, heading: tuple[str, ...] = ()) -> Iterator[tuple[str, str, str]]:
    prose = _prose(text)
    lead = sentences(prose)
    if heading and lead:
        yield (
            heading_question(heading[-1], heading[-2] if len(heading) > 1 else None),
            lead[0],
            "heading",
        )
    for s in lead:
        en = _EN_DEF.match(s)
        if en and en.group("term").split()[0].lower() not in _PRONOUNS:
            term = re.sub(r"^(The|An?) ", "", en.group("term"))
            be = "are" if en.group("verb") == "are" else "is"
            yield f"What {be} {term}?", en.group("def").strip(), "definition"
            continue
        zh = _ZH_DEF.match(s)
        if zh and language(s) == "zh" and not _ZH_NOT_A_TERM.search(zh.group("term")):
            yield f"{zh.group('term')}是什么？", zh.group("def").strip(), "definition"
    items = [line.rstrip() for line in _FENCE.sub("", text).splitlines() if _is_item(line)]
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
        what = c.group("text").rstrip(".:").strip() if c else ""
        if what and code and not _NOT_AN_INSTRUCTION.match(what) and not lines[0].startswith("#!"):
            q = (
                f"如何{what}？"
                if language(what) == "zh"
                else f"How do I {what[0].lower() + what[1:]}?"
            )
            yield q, code, "code"


def _is_item(line: str) -> bool:
    return bool(_LIST_ITEM.match(line)) and not _RULE.match(line)


def _list_block(text: str) -> str:
    """The first run of consecutive list lines outside code, as written (a span of the section)."""
    lines = _FENCE.sub("", text).splitlines()
    start = next((i for i, line in enumerate(lines) if _is_item(line)), None)
    if start is None:
        return ""
    end = start
    while end + 1 < len(lines) and _is_item(lines[end + 1]):
        end += 1
    return "\n".join(lines[start : end + 1]).strip() if end > start else ""
