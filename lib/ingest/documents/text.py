"""Plain text, Markdown and source code: the text is the file itself, structure is found in it."""

from __future__ import annotations

import re

from lib.ingest.documents.model import ExtractedDocument, Section

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")

# Top-level definitions that start a new section in source code, with the name they define.
_DEFINITION = re.compile(
    r"^(?:export\s+(?:default\s+)?)?(?:pub(?:\(\w+\))?\s+)?(?:async\s+)?"
    r"(?:def|class|function|func|fn|interface|struct|enum|trait|impl|type|module|object)\s+([A-Za-z_$][\w$]*)",
    re.MULTILINE,
)


def extract_plain(text: str, media_type: str = "text/plain") -> ExtractedDocument:
    return ExtractedDocument(text, [Section(0, len(text))], media_type)


def extract_markdown(text: str, media_type: str = "text/markdown") -> ExtractedDocument:
    """Sections start at each heading (ATX `#` or setext underline); fenced code is its own
    section of kind `code`. Each section's text includes its heading line."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []  # (level, title)
    title: str | None = None
    section_start = 0
    fence: str | None = None
    code_start = 0
    offset = 0
    previous_line = ""
    previous_start = 0

    def current_path() -> tuple[str, ...]:
        return tuple(t for _, t in path)

    def close(end: int, kind: str = "text") -> None:
        if end > section_start and text[section_start:end].strip():
            sections.append(Section(section_start, end, current_path(), None, kind))

    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        line_start = offset
        offset += len(line)
        fence_match = _FENCE.match(stripped)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
                close(offset, "code")
                section_start = offset
            previous_line = ""
            continue
        if fence_match:
            close(line_start)
            fence = fence_match.group(1)
            section_start = code_start = line_start
            previous_line = ""
            continue
        heading = _ATX_HEADING.match(stripped)
        level = 0
        heading_start = line_start
        if heading:
            level, name = len(heading.group(1)), heading.group(2).strip()
        elif previous_line.strip() and _SETEXT_UNDERLINE.match(stripped) and not previous_line.startswith((" " * 4, "\t")):
            level = 1 if stripped.strip()[0] == "=" else 2
            name = previous_line.strip()
            heading_start = previous_start
        if level:
            close(heading_start)
            section_start = heading_start
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, name))
            if title is None and level == 1:
                title = name
        previous_line, previous_start = stripped, line_start
    if fence is not None:  # an unclosed fence runs to the end of the file
        section_start = code_start
        close(len(text), "code")
    else:
        close(len(text))
    return ExtractedDocument(text, sections, media_type, title)


def extract_code(text: str, media_type: str, language: str) -> ExtractedDocument:
    """Source code: one `code` section per top-level definition, named by what it defines."""
    sections: list[Section] = []
    starts = [(m.start(), m.group(1)) for m in _DEFINITION.finditer(text)]
    if not starts or starts[0][0] > 0:
        starts.insert(0, (0, ""))
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        if text[start:end].strip():
            sections.append(Section(start, end, (name,) if name else (), None, "code"))
    return ExtractedDocument(text, sections, media_type, None, {"language": language})
