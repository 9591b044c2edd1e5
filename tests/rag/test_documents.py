"""Reading and chunking: headings, offsets, overlap, and bad input named and skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragtune.rag import documents
from ragtune.rag.chunk import chunk_document, token_spans
from ragtune.rag.documents import DocumentError, collect, read


def minimal_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose content stream shows `lines` in Helvetica (written by hand)."""
    text = " ".join(f"({t}) Tj 0 -14 Td" for t in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {text} ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def test_markdown_sections_follow_heading_paths_and_skip_code_fences(docs: Path) -> None:
    doc = read(docs / "guide.md")
    assert [s.heading for s in doc.sections] == [
        ("Marlowe Station",),
        ("Marlowe Station", "Trains"),
    ]
    chunks = chunk_document(doc, "g")
    assert [c.heading for c in chunks] == [s.heading for s in doc.sections]  # one per short section
    assert "# a comment in code" in chunks[1].text  # a '#' inside ``` is text, not a heading
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
    assert chunks[0].text.startswith("Marlowe Station was founded")


def test_html_headings_visible_text_only(docs: Path) -> None:
    doc = read(docs / "harbor.html")
    assert [s.heading for s in doc.sections] == [("Harbor",), ("Harbor", "Fees")]
    assert "color: red" not in doc.text and "Docking costs 40 euros" in doc.text


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(minimal_pdf(["The pump runs at 40 bar.", "Service it every year."]))
    doc = read(pdf)
    assert doc.sections[0].heading == ("page 1",)
    assert "40 bar" in doc.text[doc.sections[0].start : doc.sections[0].end]


def test_long_section_chunks_overlap_and_cover_every_token() -> None:
    text = " ".join(f"Sentence number {i} says something." for i in range(60))
    doc = documents.Document("x.txt", text, [documents.Section((), 0, len(text))])
    chunks = chunk_document(doc, "x", size=40, overlap=8)
    assert len(chunks) > 3
    spans = token_spans(text)
    covered = set()
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # consecutive chunks overlap
    for c in chunks:
        inside = [s for s in spans if c.start <= s[0] and s[1] <= c.end]
        assert len(inside) <= 40
        covered.update(inside)
        assert text[c.start : c.end] == c.text
    assert covered == set(spans)
    # chunks end at sentence ends where one is near the window's end
    assert all(c.text.endswith(".") for c in chunks)


def test_chinese_is_chunked_by_character() -> None:
    text = "北京大学位于北京市海淀区。" * 10
    doc = documents.Document("z.txt", text, [documents.Section((), 0, len(text))])
    chunks = chunk_document(doc, "z", size=26, overlap=4)
    assert all(len(c.text) <= 26 for c in chunks) and len(chunks) >= 5


def test_collect_names_bad_paths_and_keeps_the_rest(tmp_path: Path, docs: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    files, problems = collect([str(docs), str(tmp_path / "empty"), str(tmp_path / "data.bin"),
                               str(tmp_path / "missing.md"), str(docs / "guide.md")])  # fmt: skip
    assert [f.name for f in files] == ["guide.md", "harbor.html", "zh.txt"]  # no duplicate
    assert any("empty: no documents found" in p for p in problems)
    assert any("data.bin: unsupported file type .bin" in p for p in problems)
    assert any("missing.md: no such file" in p for p in problems)


def test_single_file_is_indexed_like_a_folder_of_one(docs: Path) -> None:
    files, problems = collect([str(docs / "guide.md")])
    assert [f.name for f in files] == ["guide.md"] and problems == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("binary.txt", b"\x00\x01\x02abc", "binary content"),
        ("latin1.md", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"not a pdf at all", "not a readable PDF"),
    ],
)
def test_unreadable_files_raise_an_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=message) as err:
        read(path)
    assert str(path) in str(err.value)
