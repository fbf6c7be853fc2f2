"""Extraction details: which type a file is read as, text decoding, and the structure each reader keeps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from lib import errors
from lib.ingest.documents import decode_text, detect_media_type, extract_document

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(("filename", "declared", "expected"), [
    ("a.md", None, "text/markdown"),
    ("a.md", "application/octet-stream", "text/markdown"),
    ("a.bin", "text/markdown; charset=utf-8", "text/markdown"),
    ("report.PDF", "", "application/pdf"),
    ("data.jsonl", None, "application/x-ndjson"),
    ("main.rs", "text/plain", "text/x-rust"),
    ("README", None, "text/plain"),
    ("page", "application/xhtml+xml", "text/html"),
])
def test_media_type_detection(filename: str, declared: str | None, expected: str) -> None:
    assert detect_media_type(filename, declared) == expected


@pytest.mark.parametrize(("filename", "declared"), [("photo.jpg", None), ("x.txt", "image/png"),
                                                    ("archive.zip", "application/octet-stream")])
def test_unsupported_types_are_415_naming_the_file(filename: str, declared: str | None) -> None:
    with pytest.raises(errors.UnsupportedMediaType) as caught:
        detect_media_type(filename, declared)
    assert caught.value.status == 415 and filename in caught.value.message


def test_text_decoding() -> None:
    assert decode_text("\ufeffcafé\r\nok".encode(), "a.txt") == "café\nok"
    assert decode_text("naïve".encode("utf-16"), "a.txt") == "naïve"
    assert decode_text("caf\xe9".encode("cp1252"), "a.txt") == "café"
    with pytest.raises(errors.UnsupportedMediaType):
        decode_text(b"\x00\x01\x02binary", "a.txt")


def test_markdown_setext_headings_and_unclosed_fences() -> None:
    document = extract_document(b"Title\n=====\n\nIntro.\n\nPart\n----\n\nBody.\n\n```\nnever closed\n", "a.md")
    assert document.title == "Title"
    assert [(s.heading_path, s.kind) for s in document.sections] == [
        (("Title",), "text"), (("Title", "Part"), "text"), (("Title", "Part"), "code")]
    assert document.text[document.sections[-1].char_start:].startswith("```")


def test_html_keeps_blocks_and_drops_chrome() -> None:
    html = (b"<html><head><title>Docs</title><script>var x = 1;</script></head><body>"
            b"<nav><a>Home</a></nav><h1>Intro</h1><p>First&nbsp;para.</p><ul><li>one</li><li>two</li></ul>"
            b"<h3>Deep</h3><pre>  indented\n  code</pre><footer>(c) us</footer></body></html>")
    document = extract_document(html, "index.html")
    assert document.title == "Docs"
    assert "var x" not in document.text and "Home" not in document.text
    assert document.text.startswith("Intro\n\nFirst para.\n\none\n\ntwo")
    code = [s for s in document.sections if s.kind == "code"][0]
    assert document.text[code.char_start:code.char_end] == "  indented\n  code"
    assert code.heading_path == ("Intro", "Deep")


def test_json_lines_and_semicolon_csv() -> None:
    lines = extract_document(b'{"id": 1, "tags": ["a"]}\n{"id": 2, "tags": []}\n', "rows.jsonl")
    assert lines.text == "[0].id: 1\n[0].tags[0]: a\n\n[1].id: 2\n[1].tags: []"
    table = extract_document(b"city;country\nLyon;France\nOsaka;Japan\n", "cities.csv")
    assert table.text == "city: Lyon; country: France\ncity: Osaka; country: Japan"
    assert table.metadata == {"rows": 2, "columns": 2}


def test_pdf_pages_and_docx_headings_from_the_fixtures() -> None:
    pdf = extract_document((FIXTURES / "sample.pdf").read_bytes(), "sample.pdf")
    assert [s.page for s in pdf.sections] == [1, 2] and pdf.metadata == {"pages": 2}
    docx = extract_document((FIXTURES / "sample.docx").read_bytes(), "sample.docx")
    assert docx.title == "Onboarding guide"
    assert {s.heading_path for s in docx.sections} >= {("Accounts",), ("Accounts", "Contacts"), ("Expenses",)}


def test_encrypted_pdf_is_422_naming_the_file() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(FIXTURES / "sample.pdf").pages:
        writer.add_page(page)
    writer.encrypt("secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(errors.ValidationFailed) as caught:
        extract_document(out.getvalue(), "locked.pdf")
    assert caught.value.code == "encrypted_document" and "locked.pdf" in caught.value.message


def test_source_code_sections_are_named_by_definition() -> None:
    source = b"const x = 1;\n\nexport async function load(url) {\n  return fetch(url);\n}\n\nclass Cache {}\n"
    document = extract_document(source, "load.js")
    assert document.media_type == "text/x-javascript" and document.metadata == {"language": "javascript"}
    assert [s.heading_path for s in document.sections] == [(), ("load",), ("Cache",)]
