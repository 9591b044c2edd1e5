"""Cutting documents into overlapping chunks of about `size` tokens, inside one section each.

A token here is a word, a number, a punctuation mark or one CJK character (the unit BERT-style
embedders such as all-MiniLM-L6-v2 split Chinese into), found by one regex with character
offsets, so every chunk's `start`/`end` point exactly into its document's text. A chunk never
spans two sections (a heading starts a new chunk), and it ends at a sentence end when one
falls in its last quarter, so passages read as whole sentences.

    chunks = chunk_document(doc, size=160, overlap=32)
    doc.text[chunks[0].start : chunks[0].end] == chunks[0].text      # always
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragtune.rag.documents import Document
from ragtune.text import CJK_RANGES

_TOKEN = re.compile(rf"[{CJK_RANGES}]|[^\W_{CJK_RANGES}]+|[^\w\s]")
_SENTENCE_END = re.compile(r"[.!?。！？；;]")


@dataclass(frozen=True)
class Chunk:
    id: str
    """Stable within an index: "<file key>:<n>"."""
    file: str
    """Path of the document, as indexed."""
    heading: tuple[str, ...]
    """Heading path of the section it comes from."""
    start: int
    """Character offset of the chunk in its document's text."""
    end: int
    """End offset (exclusive)."""
    text: str
    """document.text[start:end]: what the generator reads as a passage."""

    def indexed_text(self) -> str:
        """What retrieval matches against: the heading path, then the text (a heading often
        holds the words a question uses: "Install" for "how do I install it?")."""
        return " > ".join(self.heading) + "\n" + self.text if self.heading else self.text


def token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(text)]


def chunk_document(doc: Document, key: str, size: int = 160, overlap: int = 32) -> list[Chunk]:
    """Chunks of `doc` with ids "<key>:0", "<key>:1", ...; consecutive chunks of one section
    share `overlap` tokens."""
    if size < 8 or not 0 <= overlap < size // 2:
        raise ValueError(f"chunk size {size} / overlap {overlap}: need size >= 8, overlap < size/2")
    chunks: list[Chunk] = []
    for sec in doc.sections:
        body = doc.text[sec.start : sec.end]
        spans = token_spans(body)
        i = 0
        while i < len(spans):
            j = min(i + size, len(spans))
            if j < len(spans):  # not the section's last window: end at a sentence if near
                for t in range(j - 1, i + (3 * size) // 4 - 1, -1):
                    s, e = spans[t]
                    if _SENTENCE_END.fullmatch(body[s:e]):
                        j = t + 1
                        break
            start, end = sec.start + spans[i][0], sec.start + spans[j - 1][1]
            chunks.append(
                Chunk(
                    f"{key}:{len(chunks)}", doc.path, sec.heading, start, end, doc.text[start:end]
                )
            )
            if j == len(spans):
                break
            i = max(j - overlap, i + 1)
    return chunks
