"""Bytes + media type (or filename) -> `ExtractedDocument`: text with headings, pages, tables, code.

Formats and their readers (each imported only when a file of that kind arrives):
plain text, Markdown and source code (read as they are), HTML (stdlib `html.parser`),
PDF (pypdf), DOCX (python-docx), CSV (stdlib `csv`), JSON and JSON Lines (stdlib `json`).

Errors: a type we do not read -> 415; a PDF or DOCX that does not parse, invalid JSON -> 422
naming the file; a document with no text -> 422.
"""

from __future__ import annotations

import codecs
import posixpath
import re

from lib import errors
from lib.ingest.documents.model import DocumentBuilder, ExtractedDocument, Section

__all__ = ["DocumentBuilder", "ExtractedDocument", "Section", "extract_document", "detect_media_type",
           "SUPPORTED_MEDIA_TYPES"]

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_BY_EXTENSION = {
    ".txt": "text/plain", ".text": "text/plain", ".log": "text/plain", ".rst": "text/plain",
    ".md": "text/markdown", ".markdown": "text/markdown", ".mdx": "text/markdown",
    ".html": "text/html", ".htm": "text/html", ".xhtml": "text/html",
    ".pdf": PDF, ".docx": DOCX,
    ".csv": "text/csv", ".tsv": "text/tab-separated-values",
    ".json": "application/json", ".jsonl": "application/x-ndjson", ".ndjson": "application/x-ndjson",
}

# Source code: extension -> language. Stored as media type `text/x-<language>`.
LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".go": "go", ".rs": "rust",
    ".java": "java", ".kt": "kotlin", ".scala": "scala", ".c": "c", ".h": "c", ".cc": "cpp",
    ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp", ".rb": "ruby", ".php": "php", ".swift": "swift",
    ".sh": "shell", ".bash": "shell", ".sql": "sql", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml",
    ".css": "css", ".scss": "css", ".vue": "vue", ".svelte": "svelte", ".lua": "lua", ".r": "r",
    ".ex": "elixir", ".exs": "elixir", ".dart": "dart", ".zig": "zig", ".xml": "xml",
}

_ALIASES = {
    "text/x-markdown": "text/markdown", "application/xhtml+xml": "text/html",
    "application/x-pdf": PDF, "application/csv": "text/csv", "text/json": "application/json",
    "application/jsonl": "application/x-ndjson", "application/x-jsonlines": "application/x-ndjson",
    "text/x-script.python": "text/x-python", "application/javascript": "text/x-javascript",
    "text/javascript": "text/x-javascript", "application/typescript": "text/x-typescript",
    "application/x-yaml": "text/x-yaml", "application/yaml": "text/x-yaml",
    "application/toml": "text/x-toml", "application/sql": "text/x-sql", "text/xml": "text/x-xml",
    "application/xml": "text/x-xml",
}
# Declared types that say nothing about the content: the filename decides.
_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/x-www-form-urlencoded"}

SUPPORTED_MEDIA_TYPES = sorted(
    set(_BY_EXTENSION.values()) | {f"text/x-{lang}" for lang in set(LANGUAGES.values())}
)


def detect_media_type(filename: str, declared: str | None = None) -> str:
    """The media type we will read the file as; 415 when neither the type nor the name fits."""
    kind = (declared or "").split(";")[0].strip().lower()
    kind = _ALIASES.get(kind, kind)
    extension = posixpath.splitext(filename.lower())[1]
    if kind in SUPPORTED_MEDIA_TYPES and kind != "text/plain":
        return kind
    if kind in _GENERIC or kind == "text/plain":
        # browsers and curl send text/plain or octet-stream for .md, .csv, .py: the name knows better
        if extension in _BY_EXTENSION and not (kind == "text/plain" and extension in (".pdf", ".docx")):
            return _BY_EXTENSION[extension]
        if extension in LANGUAGES:
            return f"text/x-{LANGUAGES[extension]}"
        if kind == "text/plain" or (not kind and not extension):
            return "text/plain"
    described = f"type {kind!r}" if kind else f"extension {extension!r}" if extension else "no extension"
    raise errors.UnsupportedMediaType(
        f"{filename}: cannot read files of {described}; supported: text, Markdown, HTML, PDF, "
        "DOCX, CSV, JSON and source code",
        code="unsupported_document_type",
        details={"filename": filename, "media_type": kind or None, "supported": SUPPORTED_MEDIA_TYPES},
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def decode_text(data: bytes, filename: str) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; other bytes as Windows-1252."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16", errors="surrogatepass")
            text.encode("utf-8")  # a lone surrogate decodes but cannot be stored
        except UnicodeError:
            raise errors.ValidationFailed(
                f"{filename}: starts with a UTF-16 byte order mark but is not valid UTF-16",
                code="corrupt_document", details={"filename": filename},
            ) from None
        data = text.encode("utf-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    if "\x00" in text:
        raise errors.UnsupportedMediaType(
            f"{filename}: looks like a binary file, not text", code="unsupported_document_type"
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def extract_document(data: bytes, filename: str, media_type: str | None = None) -> ExtractedDocument:
    """Read one file. `media_type` may be generic or missing: then the extension decides."""
    kind = detect_media_type(filename, media_type)
    if not data.strip():
        raise errors.ValidationFailed(f"{filename}: the document is empty", code="empty_document")
    if kind == PDF:
        from lib.ingest.documents.pdf import extract_pdf

        document = extract_pdf(data, filename)
    elif kind == DOCX:
        from lib.ingest.documents.word import extract_docx

        document = extract_docx(data, filename)
    else:
        document = _extract_text_format(decode_text(data, filename), filename, kind)
    if not document.text.strip() or not document.sections:
        hint = " (a scanned PDF needs OCR, which we do not do)" if kind == PDF else ""
        raise errors.ValidationFailed(f"{filename}: the document has no text{hint}", code="empty_document")
    if document.title is None:
        document.title = posixpath.basename(filename) or None
    # Parsers of binary formats can hand back characters Postgres cannot store; replace them one
    # for one so section offsets stay right.
    document.text = _UNSTORABLE.sub("\ufffd", document.text)
    if document.title:
        document.title = _UNSTORABLE.sub("\ufffd", document.title)
    return document


def _extract_text_format(text: str, filename: str, kind: str) -> ExtractedDocument:
    from lib.ingest.documents import data
    from lib.ingest.documents import text as plain

    if kind == "text/markdown":
        return plain.extract_markdown(text)
    if kind == "text/html":
        from lib.ingest.documents.markup import extract_html

        return extract_html(text)
    if kind in ("text/csv", "text/tab-separated-values"):
        return data.extract_csv(text, filename, kind)
    if kind in ("application/json", "application/x-ndjson"):
        return data.extract_json(text, filename, kind)
    if kind.startswith("text/x-"):
        return plain.extract_code(text, kind, kind.removeprefix("text/x-"))
    return plain.extract_plain(text, kind)
