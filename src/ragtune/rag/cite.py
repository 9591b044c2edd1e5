"""Which retrieved passages an answer came from.

A model tuned on ragtune's prompt answers with a span copied from a passage and no marker,
so citations are found, not parsed: the passages that contain the answer (`text.
answer_in_context`: word boundaries in English, characters in Chinese). Markers the model did
write (`... [2]`, as RAFT-style training with cited targets teaches) are taken as they are
when they point at a passage. An answer found in no passage (paraphrased) cites the passage
sharing most of its tokens, if that is at least half of them; a refusal cites nothing.

    cite("Ada Quill", passages)     # [1]   (1-based, prompt numbering)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ragtune.rag.retrieve import Passage
from ragtune.text import answer_in_context, language, metric_tokens, strip_citations

_MARKER = re.compile(r"\[(\d{1,3})\]")
MIN_OVERLAP = 0.5


@dataclass(frozen=True)
class Citation:
    n: int
    """The passage's number in the prompt ([1] is the first)."""
    file: str
    heading: tuple[str, ...]
    start: int
    end: int
    """Character offsets of the passage in its file's extracted text."""

    def label(self) -> str:
        where = " > ".join(self.heading)
        return f"[{self.n}] {self.file}" + (f" ({where})" if where else "")


def cite(answer: str, passages: Sequence[Passage]) -> list[int]:
    """1-based numbers of the passages the answer came from, in prompt order."""
    marked = sorted({int(m) for m in _MARKER.findall(answer) if 1 <= int(m) <= len(passages)})
    if marked:
        return marked
    bare = strip_citations(answer)
    if not bare:
        return []
    found = [i for i, p in enumerate(passages, 1) if answer_in_context(bare, [p.text])]
    if found:
        return found
    lang = language(bare)
    want = set(metric_tokens(bare, lang))
    if not want:
        return []
    overlaps = [len(want & set(metric_tokens(p.text, lang))) / len(want) for p in passages]
    best = max(range(len(passages)), key=lambda i: overlaps[i], default=None)
    return [best + 1] if best is not None and overlaps[best] >= MIN_OVERLAP else []


def citations(numbers: Sequence[int], passages: Sequence[Passage]) -> list[Citation]:
    return [
        Citation(n, passages[n - 1].chunk.file, passages[n - 1].chunk.heading,
                 passages[n - 1].chunk.start, passages[n - 1].chunk.end)
        for n in numbers
    ]  # fmt: skip
