"""PDF: the text of each page, as its own section with its 1-based page number.

Read with pypdf: pure Python (no system libraries, small in the bundle), maintained, and it
handles the common text encodings and broken cross-reference tables well enough for ingestion.
"""

from __future__ import annotations

import io
import logging

from lib import errors
from lib.ingest.documents.model import DocumentBuilder, ExtractedDocument


def extract_pdf(data: bytes, filename: str) -> ExtractedDocument:

    from pypdf import PdfReader

    # pypdf logs recoverable oddities of real-world files at WARNING; they are not ours to report.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise errors.ValidationFailed(
                f"{filename}: the PDF is encrypted with a password", code="encrypted_document"
            )
        builder = DocumentBuilder()
        pages = len(reader.pages)
        for number, page in enumerate(reader.pages, start=1):
            builder.add(page.extract_text() or "", (), number)
        title = None
        try:
            title = (reader.metadata or {}).get("/Title") or None
        except Exception:  # noqa: BLE001 - metadata is optional; a broken info dict is not fatal
            title = None
    except errors.ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on malformed files
        raise errors.ValidationFailed(
            f"{filename}: not a readable PDF ({type(exc).__name__})", code="corrupt_document"
        ) from exc
    return builder.build("application/pdf", str(title) if title else None, pages=pages)
