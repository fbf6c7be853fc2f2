"""What extraction produces: the document's text and the sections that give it structure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    """A span of the extracted text under one heading path, on one page, of one kind."""

    char_start: int
    char_end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    kind: str = "text"  # text | code | table


@dataclass
class ExtractedDocument:
    """Plain text plus structure. Section offsets index `text`; sections are in reading order."""

    text: str
    sections: list[Section]
    media_type: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. {"pages": 3, "language": "python"}


class DocumentBuilder:
    """Appends blocks of text with their structure and keeps section offsets right.

    Blocks are separated by a blank line, so paragraph-level chunking sees each block on its own.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self.sections: list[Section] = []

    def add(self, text: str, heading_path: tuple[str, ...] = (), page: int | None = None,
            kind: str = "text") -> None:
        text = text.strip("\n") if kind == "code" else text.strip()
        if not text.strip():
            return
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        self.sections.append(Section(start, self._length, heading_path, page, kind))

    def build(self, media_type: str, title: str | None = None, **metadata: Any) -> ExtractedDocument:
        return ExtractedDocument("".join(self._parts), self.sections, media_type, title, metadata)
