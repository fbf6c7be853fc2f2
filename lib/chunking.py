"""Structure-aware recursive chunking: text -> chunks of at most N tokens, with overlap.

A span too large for one chunk is cut at the coarsest boundary that exists inside it: paragraphs
(blank lines), then lines, then sentences, then words, and only for a single "word" longer than a
chunk (a base64 blob) at a token count. The pieces are then packed greedily, in order, into chunks
of at most `size_tokens` estimated tokens (`lib.tokens`), each new chunk repeating up to
`overlap_tokens` of whole trailing pieces of the previous one. Chunks never cross a heading or a
page: `chunk_document` packs each run of sections with the same heading path and page on its own,
and code and tables are cut at lines, never mid-sentence-heuristics.

Deterministic (no randomness, no dict-order effects): the same text and options give the same
chunks. Every chunk's `text` is exactly `source[char_start:char_end]`.

Contract: `chunk_text(text, size_tokens=..., overlap_tokens=...) -> list[Chunk]` and
`chunk_document(extracted_document, size_tokens=..., overlap_tokens=...) -> list[Chunk]`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lib.tokens import count_tokens, token_spans

if TYPE_CHECKING:
    from lib.documents import ExtractedDocument

DEFAULT_SIZE_TOKENS = 400
DEFAULT_OVERLAP_TOKENS = 60


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, ready to embed. Offsets index the extracted text."""

    text: str
    char_start: int
    char_end: int
    token_count: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    position: int = 0
    kind: str = "text"  # text | code | table


# --- boundaries ----------------------------------------------------------------------------------

Span = tuple[int, int]
Splitter = Callable[[str, int, int], list[Span]]

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAK = re.compile(r"[ \t]*\n\s*")
_WHITESPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?\u2026])|(?<=[.!?\u2026][\"'\u201d\u2019)\]]))\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de])"
    r"|(?<=[\u3002\uff01\uff1f])"
)
# Words after which a period does not end a sentence ("Dr. Smith", "e.g. This").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp fig no vol pp eq approx dept est"
    " e.g i.e cf al jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


def _split_at(pattern: re.Pattern[str], text: str, start: int, end: int) -> list[Span]:
    pieces: list[Span] = []
    pos = start
    for match in pattern.finditer(text, start, end):
        if match.start() > pos:
            pieces.append((pos, match.start()))
        pos = max(pos, match.end())
    if pos < end:
        pieces.append((pos, end))
    return pieces


def _paragraphs(text: str, start: int, end: int) -> list[Span]:
    return _split_at(_PARAGRAPH_BREAK, text, start, end)


def _lines(text: str, start: int, end: int) -> list[Span]:
    return _split_at(_LINE_BREAK, text, start, end)


def _words(text: str, start: int, end: int) -> list[Span]:
    return _split_at(_WHITESPACE, text, start, end)


def _sentences(text: str, start: int, end: int) -> list[Span]:
    pieces: list[Span] = []
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        cut = match.start()
        if cut <= pos or _ends_with_abbreviation(text, pos, cut):
            continue
        pieces.append((pos, cut))
        pos = match.end()
    if pos < end:
        pieces.append((pos, end))
    return pieces


def _ends_with_abbreviation(text: str, start: int, cut: int) -> bool:
    tail = text[max(start, cut - 12):cut].rstrip("\"'\u201d\u2019)]")
    if not tail.endswith("."):
        return False
    word = tail[:-1].rsplit(None, 1)[-1] if tail[:-1].strip() else ""
    word = word.lstrip("(\"'")
    return (len(word) == 1 and word.isalpha()) or word.lower() in _ABBREVIATIONS


# Which boundaries to try, coarsest first, for each kind of section.
_LEVELS: dict[str, tuple[Splitter, ...]] = {
    "text": (_paragraphs, _lines, _sentences, _words),
    "code": (_paragraphs, _lines, _words),
    "table": (_lines, _words),
}


# --- cutting a span into pieces that each fit ------------------------------------------------------


def _pieces(text: str, start: int, end: int, size: int, levels: Sequence[Splitter]) -> list[tuple[int, int, int]]:
    """(start, end, tokens) pieces covering the non-blank text of [start, end), each <= size."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start >= end:
        return []
    tokens = count_tokens(text[start:end])
    if tokens <= size:
        return [(start, end, tokens)]
    for depth, split in enumerate(levels):
        spans = split(text, start, end)
        if len(spans) > 1:
            out: list[tuple[int, int, int]] = []
            for s, e in spans:
                out.extend(_pieces(text, s, e, size, levels[depth + 1:]))
            return out
    return _cut_by_tokens(text, start, end, size)


def _cut_by_tokens(text: str, start: int, end: int, size: int) -> list[tuple[int, int, int]]:
    """Last resort for one unbroken run longer than a chunk: cut every `size` tokens."""
    spans = token_spans(text[start:end])
    out = []
    for i in range(0, len(spans), size):
        group = spans[i:i + size]
        piece_end = spans[i + size][0] if i + size < len(spans) else end - start
        out.append((start + group[0][0], start + piece_end, len(group)))
    return out


# --- packing pieces into chunks ------------------------------------------------------------------


def _gap_tokens(text: str, end: int, start: int) -> int:
    return count_tokens(text[end:start]) if start > end else 0


def _pack(
    text: str, pieces: list[tuple[int, int, int]], size: int, overlap: int
) -> list[tuple[int, int, int]]:
    """Greedy packing of consecutive pieces into (start, end, tokens) chunks of <= size tokens."""
    chunks: list[tuple[int, int, int]] = []
    n = len(pieces)
    i = 0
    while i < n:
        total = pieces[i][2]
        j = i + 1
        while j < n:
            added = _gap_tokens(text, pieces[j - 1][1], pieces[j][0]) + pieces[j][2]
            if total + added > size:
                break
            total += added
            j += 1
        chunks.append((pieces[i][0], pieces[j - 1][1], total))
        if j >= n:
            break
        # Start the next chunk with whole trailing pieces worth at most `overlap` tokens, leaving
        # room for the piece that did not fit, so every chunk brings something new.
        k = j
        carried = 0
        room = size - pieces[j][2]
        while k - 1 > i and overlap > 0:
            added = pieces[k - 1][2] + _gap_tokens(text, pieces[k - 1][1], pieces[k][0])
            if carried + added > overlap or carried + added > room:
                break
            carried += added
            k -= 1
        i = k
    return chunks


def _check_sizes(size_tokens: int, overlap_tokens: int) -> None:
    if size_tokens < 1:
        raise ValueError("size_tokens must be at least 1")
    if overlap_tokens < 0 or overlap_tokens >= size_tokens:
        raise ValueError("overlap_tokens must be at least 0 and smaller than size_tokens")


# --- public --------------------------------------------------------------------------------------


def chunk_text(
    text: str,
    size_tokens: int = DEFAULT_SIZE_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    *,
    kind: str = "text",
) -> list[Chunk]:
    """Cut plain text into chunks of at most `size_tokens`, overlapping by up to `overlap_tokens`."""
    _check_sizes(size_tokens, overlap_tokens)
    pieces = _pieces(text, 0, len(text), size_tokens, _LEVELS.get(kind, _LEVELS["text"]))
    return [
        Chunk(text[s:e], s, e, tokens, position=i, kind=kind)
        for i, (s, e, tokens) in enumerate(_pack(text, pieces, size_tokens, overlap_tokens))
    ]


def chunk_document(
    document: ExtractedDocument,
    size_tokens: int = DEFAULT_SIZE_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunk an extracted document section by section, keeping heading path, page and kind.

    Consecutive sections with the same heading path, page and kind are packed together, so a
    heading followed by short paragraphs still gives full-size chunks; a new heading, page or a
    switch between prose, code and table starts a new chunk.
    """
    _check_sizes(size_tokens, overlap_tokens)
    text = document.text
    chunks: list[Chunk] = []
    group: list[tuple[int, int, int]] = []
    group_key: tuple | None = None

    def flush() -> None:
        if not group or group_key is None:
            return
        heading_path, page, kind = group_key
        for s, e, tokens in _pack(text, group, size_tokens, overlap_tokens):
            chunks.append(Chunk(text[s:e], s, e, tokens, heading_path, page, len(chunks), kind))
        group.clear()

    for section in document.sections:
        key = (tuple(section.heading_path), section.page, section.kind)
        if key != group_key:
            flush()
            group_key = key
        levels = _LEVELS.get(section.kind, _LEVELS["text"])
        group.extend(_pieces(text, section.char_start, section.char_end, size_tokens, levels))
    flush()
    return chunks
