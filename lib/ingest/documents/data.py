"""CSV and JSON: records rendered as `field: value` lines, so each chunk reads on its own.

A chunk cut from the middle of a table would lose its header; writing each row as
`name: Ada; role: engineer` keeps every row self-describing for embedding and keyword search.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from lib import errors
from lib.ingest.documents.model import DocumentBuilder, ExtractedDocument


def extract_csv(text: str, filename: str, media_type: str = "text/csv") -> ExtractedDocument:
    sample = text[:20_000]
    delimiter = "\t" if media_type == "text/tab-separated-values" else ","
    if media_type != "text/tab-separated-values":
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise errors.ValidationFailed(f"{filename}: not a readable CSV file ({exc})",
                                      code="corrupt_document") from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    builder = DocumentBuilder()
    if rows:
        header = [h.strip() or f"column {i + 1}" for i, h in enumerate(rows[0])]
        lines = []
        for row in rows[1:]:
            fields = [f"{header[i] if i < len(header) else f'column {i + 1}'}: {v.strip()}"
                      for i, v in enumerate(row) if v.strip()]
            lines.append("; ".join(fields))
        if not lines:  # a header alone is still the document's text
            lines = [", ".join(header)]
        builder.add("\n".join(lines), (), None, "table")
    return builder.build(media_type, None, rows=max(0, len(rows) - 1), columns=len(rows[0]) if rows else 0)


def _flatten(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append(f"{path}: {{}}")
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        if not value:
            out.append(f"{path}: []")
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
    else:
        rendered = value if isinstance(value, str) else json.dumps(value)
        out.append(f"{path}: {rendered}" if path else str(rendered))


def extract_json(text: str, filename: str, media_type: str = "application/json") -> ExtractedDocument:
    """Objects: one section per top-level key (its heading). Arrays and JSON Lines: one block
    per record, separated by blank lines so records are not split across chunks when they fit."""
    try:
        if media_type == "application/x-ndjson":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            value: Any = records
        else:
            value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.ValidationFailed(
            f"{filename}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            code="corrupt_document",
        ) from exc
    builder = DocumentBuilder()
    if isinstance(value, dict):
        for key, item in value.items():
            lines: list[str] = []
            _flatten(item, str(key), lines)
            builder.add("\n".join(lines), (str(key),), None, "table")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            lines = []
            _flatten(item, f"[{i}]", lines)
            builder.add("\n".join(lines), (), None, "table")
    else:
        builder.add(str(value))
    return builder.build(media_type)
