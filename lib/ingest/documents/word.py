"""DOCX: paragraphs under their headings (Word's Heading 1-9 styles; Title names the document),
and table rows.

Read with python-docx: the maintained reader of the OOXML format, pure Python over lxml.
"""

from __future__ import annotations

import io

from lib import errors
from lib.ingest.documents.model import DocumentBuilder, ExtractedDocument


def _heading_level(style_name: str) -> int:
    if style_name.startswith("Heading "):
        level = style_name.removeprefix("Heading ").strip()
        return int(level) if level.isdigit() else 0
    return 0


def _table_lines(rows: list[list[str]]) -> list[str]:
    """Rows under the first (header) row read `Name: Ada; Role: Engineer`, as CSV rows do,
    so a chunk holding only some rows still says what each value is."""
    if len(rows) < 2:
        return [" | ".join(c for c in row if c) for row in rows]
    header = rows[0]
    lines = []
    for row in rows[1:]:
        fields = []
        for i, value in enumerate(row):
            name = header[i] if i < len(header) and header[i] else f"column {i + 1}"
            # merged cells repeat their text in each spanned cell: keep it once
            if value and not (i and row[i - 1] == value):
                fields.append(f"{name}: {value}")
        lines.append("; ".join(fields))
    return lines


def extract_docx(data: bytes, filename: str) -> ExtractedDocument:
    try:
        import docx
        from docx.table import Table

        document = docx.Document(io.BytesIO(data))
        builder = DocumentBuilder()
        path: list[tuple[int, str]] = []
        title = document.core_properties.title or None
        first_heading: str | None = None
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                heading_path = tuple(t for _, t in path)
                rows = [[cell.text.strip() for cell in row.cells] for row in block.rows]
                for line in _table_lines(rows):
                    builder.add(line, heading_path, None, "table")
                continue
            text = block.text.strip()
            style = block.style.name if block.style is not None else ""
            if style == "Title" and text:
                # the document's title, not a heading: sections below it are its Heading 1s
                title = title or text
            level = _heading_level(style)
            if level and text:
                first_heading = first_heading or text
                while path and path[-1][0] >= level:
                    path.pop()
                path.append((level, text))
            builder.add(text, tuple(t for _, t in path))
        title = title or first_heading
    except Exception as exc:  # noqa: BLE001 - zipfile, lxml and python-docx each raise their own
        raise errors.ValidationFailed(
            f"{filename}: not a readable DOCX file ({type(exc).__name__})", code="corrupt_document"
        ) from exc
    return builder.build(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", title or None
    )
