"""HTML: headings, paragraphs, list items, preformatted code and table rows, without the page chrome.

Parsed with the standard library's `html.parser`: it tolerates broken markup, costs no dependency
and no import time, and we only need the block structure, not a DOM.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from lib.ingest.documents.model import DocumentBuilder, ExtractedDocument

_SKIP = {"script", "style", "noscript", "template", "svg", "nav", "iframe", "button", "form"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {
    "p", "div", "li", "dd", "dt", "blockquote", "section", "article", "main", "header", "footer",
    "aside", "figcaption", "caption", "ul", "ol", "dl", "table", "tbody", "thead", "body", "br", "hr",
}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}
_SPACES = re.compile(r"\s+")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.builder = DocumentBuilder()
        self.title: str | None = None
        self.path: list[tuple[int, str]] = []
        self.buffer: list[str] = []
        self.skip_depth = 0
        self.in_title = False
        self.title_parts: list[str] = []
        self.pre_depth = 0
        self.heading_level = 0
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    # --- structure ---------------------------------------------------------------------------
    def _heading_path(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.path)

    def _flush(self, kind: str = "text") -> None:
        raw = "".join(self.buffer)
        self.buffer.clear()
        text = raw if kind == "code" else _SPACES.sub(" ", raw).strip()
        if text.strip():
            self.builder.add(text, self._heading_path(), None, kind)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag == "title":
            self.in_title = True
            return
        if self.skip_depth:
            return
        if tag in _HEADINGS:
            self._flush()
            self.heading_level = _HEADINGS[tag]
        elif tag == "pre":
            self._flush()
            self.pre_depth += 1
        elif tag == "tr":
            self._flush()
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag in _BLOCKS and not self.pre_depth and self.row is None:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "title":
            self.in_title = False
            self.title = _SPACES.sub(" ", "".join(self.title_parts)).strip() or None
            return
        if self.skip_depth:
            return
        if tag in _HEADINGS and self.heading_level:
            name = _SPACES.sub(" ", "".join(self.buffer)).strip()
            self.buffer.clear()
            level = self.heading_level
            self.heading_level = 0
            if name:
                while self.path and self.path[-1][0] >= level:
                    self.path.pop()
                self.path.append((level, name))
                self.builder.add(name, self._heading_path())
        elif tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
            if not self.pre_depth:
                self._flush("code")
        elif tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(_SPACES.sub(" ", "".join(self.cell)).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            cells = [c for c in self.row if c]
            if cells:
                self.builder.add(" | ".join(cells), self._heading_path(), None, "table")
            self.row = None
        elif tag in _BLOCKS and not self.pre_depth and self.row is None:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        elif self.skip_depth:
            return
        elif self.cell is not None:
            self.cell.append(data)
        elif self.row is None:
            self.buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush("code" if self.pre_depth else "text")


def extract_html(text: str, media_type: str = "text/html") -> ExtractedDocument:
    reader = _Reader()
    reader.feed(text)
    reader.close()
    title = reader.title or (reader.path[0][1] if reader.path else None)
    return reader.builder.build(media_type, title)
