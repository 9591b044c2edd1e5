"""Reading a user's documents into text with headings: Markdown, plain text, HTML and PDF.

`collect(paths)` expands files and folders (recursively, supported suffixes only, hidden
files skipped) into the files to index; a single file is indexed like a folder of one. Each
file is read by `read(path)` into a `Document`: its text and `Section`s, each the span of the
text under one heading path. A file that cannot be read (a binary file, a PDF that pypdf
cannot parse, undecodable bytes) raises `DocumentError` naming the file; the indexer reports
it and goes on with the rest.

    files, problems = collect(["docs/", "notes.md"])
    doc = read(files[0])          # Document(path, text, sections=[Section(("Intro",), 0, 812), ...])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import cast

from ragtune.errors import RagtuneError

SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


class DocumentError(RagtuneError):
    """A file that cannot be indexed; the message starts with its path."""


@dataclass(frozen=True)
class Section:
    heading: tuple[str, ...]
    """Heading path, outermost first (("Guide", "Install")); () before the first heading."""
    start: int
    """Character offset in `Document.text` where the section's body begins."""
    end: int
    """Character offset where it ends (exclusive)."""


@dataclass
class Document:
    path: str
    text: str
    """The extracted text; chunk offsets point into it."""
    sections: list[Section]
    """Non-overlapping, in order, covering the text's bodies (headings themselves excluded)."""


def collect(paths: list[str]) -> tuple[list[Path], list[str]]:
    """(files to read, in a stable order; problems, one line each naming the path). A
    missing path or an explicitly named file of an unsupported type is a problem, not an
    exception, so the rest still gets indexed."""
    files: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                problems.append(f"{p}: no documents found (supported: {', '.join(SUFFIXES)})")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() in SUFFIXES:
                files.append(p)
            else:
                problems.append(
                    f"{p}: unsupported file type {p.suffix or '(none)'} "
                    f"(supported: {', '.join(SUFFIXES)})"
                )
        else:
            problems.append(f"{p}: no such file or folder")
    unique = list(dict.fromkeys(f.resolve() for f in files))
    return unique, problems


def read(path: str | Path) -> Document:
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"{path}: unsupported file type {path.suffix or '(none)'}")
    if kind == "pdf":
        return _read_pdf(path)
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise DocumentError(f"{path}: binary content (NUL bytes) in a {kind} file; skipped")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError(f"{path}: not UTF-8 text (byte {e.start}); skipped") from e
    if kind == "markdown":
        return _markdown(str(path), text)
    if kind == "html":
        return _html(str(path), text)
    return Document(str(path), text, [Section((), 0, len(text))])


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^(```|~~~)")


def _markdown(path: str, text: str) -> Document:
    """ATX headings (# .. ######) open sections; '#' lines inside fenced code do not."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body_start, heading = 0, cast(tuple[str, ...], ())
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line.lstrip()):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line.rstrip("\r\n"))
        if m:
            sections.append(Section(heading, body_start, pos))
            level = len(m.group(1))
            stack = [(lv, h) for lv, h in stack if lv < level] + [(level, m.group(2).strip())]
            heading = tuple(h for _, h in stack)
            body_start = pos + len(line)
        pos += len(line)
    sections.append(Section(heading, body_start, len(text)))
    return Document(path, text, [s for s in sections if text[s.start : s.end].strip()])


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, with h1-h6 as headings; script, style and head skipped."""

    SKIP = {"script", "style", "head", "noscript", "template"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "pre", "blockquote", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.skip = 0
        self.level = 0
        self.heading_text: list[str] = []
        self.marks: list[tuple[int, int, str]] = []  # (offset, level, heading)

    def _add(self, s: str) -> None:
        self.parts.append(s)
        self.size += len(s)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.level, self.heading_text = int(tag[1]), []
        elif tag in self.BLOCK:
            self._add("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag) and self.level:
            title = " ".join("".join(self.heading_text).split())
            self._add("\n")
            self.marks.append((self.size, self.level, title))
            self.level = 0
        elif tag in self.BLOCK:
            self._add("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.level:
            self.heading_text.append(data)
        else:
            self._add(data)


def _html(path: str, markup: str) -> Document:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    start, heading = 0, cast(tuple[str, ...], ())
    for offset, level, title in parser.marks:
        sections.append(Section(heading, start, offset))
        stack = [(lv, h) for lv, h in stack if lv < level] + [(level, title)]
        heading, start = tuple(h for _, h in stack), offset
    sections.append(Section(heading, start, len(text)))
    return Document(path, text, [s for s in sections if text[s.start : s.end].strip()])


def _read_pdf(path: Path) -> Document:
    """One section per page, headed "page N": PDFs carry no reliable heading structure."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings would bury the report
    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise DocumentError(f"{path}: not a readable PDF ({type(e).__name__}: {e}); skipped") from e
    text, sections = "", []
    for i, page in enumerate(pages, 1):
        start = len(text)
        text += page + "\n\n"
        if page.strip():
            sections.append(Section((f"page {i}",), start, start + len(page)))
    if not sections:
        raise DocumentError(f"{path}: the PDF has no extractable text (scanned?); skipped")
    return Document(str(path), text, sections)
