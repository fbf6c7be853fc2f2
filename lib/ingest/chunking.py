"""Structure-aware chunking: text -> chunks of at most N tokens, with overlap.

Each chunk is cut at the coarsest boundary that lies inside the window a chunk can cover:
the last paragraph break (blank line) in the window, else the last line break, else the last
sentence end, else the last space, and only for one unbroken run longer than a chunk (a base64
blob) at a size. A paragraph larger than a chunk therefore starts a chunk of its own and is cut
at sentences, as a recursive splitter would; the window is found with a few C-speed searches
(`str.rfind`, `lib.tokens.SpanCounter`) rather than by measuring every paragraph. Each new chunk
repeats whole trailing pieces of the previous one at the level it was cut at (paragraphs, lines,
sentences or words), worth at most about `overlap_tokens`, as a recursive splitter's overlap does.

Chunks never cross a heading or a page: `chunk_document` chunks each run of sections with the same
heading path, page and kind on its own; code and tables are cut at lines, never at sentences.

Deterministic (no randomness, no dict-order effects): the same text and options give the same
chunks. Every chunk's `text` is exactly `source[char_start:char_end]`; sizes are estimated tokens.

Contract: `chunk_text(text, size_tokens=..., overlap_tokens=...) -> list[Chunk]` and
`chunk_document(extracted_document, size_tokens=..., overlap_tokens=...) -> list[Chunk]`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple
from zlib import adler32

from lib.tokens import PLAIN_SPAN, UNITS_PER_TOKEN, SpanCounter, to_tokens

if TYPE_CHECKING:
    from lib.ingest.documents import ExtractedDocument

DEFAULT_SIZE_TOKENS = 400
DEFAULT_OVERLAP_TOKENS = 60


class Chunk(NamedTuple):
    """One piece of a document, ready to embed. Offsets index the extracted text.
    (A named tuple: immutable, and the cheapest object Python builds, which matters at 20 MB.)"""

    text: str
    char_start: int
    char_end: int
    token_count: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    position: int = 0
    kind: str = "text"  # text | code | table


# Builds a Chunk from a tuple of all its fields without the Python-level `__new__` a named tuple
# has (which only checks the arguments): thousands of chunks per second add up.
_new_chunk = tuple.__new__


# --- boundaries ----------------------------------------------------------------------------------
#
# A level knows two searches over text[lo:hi]: `last` finds the last boundary and returns
# (where the chunk before it ends, where the text after it starts); `first` returns where the
# first unit starting at or after `lo` begins (for overlaps).

Cut = tuple[int, int]

# A sentence ends at `.`, `!` or `?` (maybe closing a quote or bracket) followed by whitespace and
# then a capital letter, a digit or an opening quote; or at a full-width CJK stop. The pattern
# opens with a character class, so the regex engine skips ahead at C speed; the rest is checked
# in Python only for the few candidates it finds.
_END_MARK = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]?(?=\s)|[\u3002\uff01\uff1f]")
_OPENERS = "\"'\u201c\u2018(["
# Words after which a period does not end a sentence ("Dr. Smith", "e.g. This").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp fig no vol pp eq approx dept est"
    " e.g i.e cf al jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
def _ends_with_abbreviation(text: str, start: int, cut: int) -> bool:
    if text[cut - 1] != ".":
        return False  # "?" and "!" and closing quotes always end a sentence
    space = max(text.rfind(" ", max(start, cut - 12), cut), text.rfind("\n", max(start, cut - 12), cut))
    word = text[max(start, space + 1, cut - 12):cut - 1].lstrip("(\"'\u201c").lower()
    return (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS


class _Separator:
    """A literal separator: blank line, line break or space."""

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def last(self, text: str, chunk_start: int, lo: int, hi: int) -> Cut | None:
        at = text.rfind(self.separator, lo, hi + len(self.separator))
        if at <= lo or at > hi:
            return None
        return at, at + len(self.separator)

    def first(self, text: str, lo: int, hi: int) -> int | None:
        at = text.find(self.separator, lo, hi)
        return None if at == -1 else at + len(self.separator)


class _Sentences:
    """Sentence ends, skipping abbreviations ("Dr.", "e.g.") and lower-case continuations."""

    @staticmethod
    def _following(text: str, chunk_start: int, cut: int) -> int | None:
        """Where the next sentence starts if `cut` ends one, else None."""
        if text[cut - 1] in "\u3002\uff01\uff1f":
            return cut
        after = _skip_space(text, cut, len(text))
        if after >= len(text):
            return None
        following = text[after + 1] if text[after] in _OPENERS and after + 1 < len(text) else text[after]
        if (following.isupper() or following.isdigit()) and not _ends_with_abbreviation(text, chunk_start, cut):
            return after
        return None

    def last(self, text: str, chunk_start: int, lo: int, hi: int) -> Cut | None:
        found = None
        for match in _END_MARK.finditer(text, lo, hi):
            cut = match.end()
            if cut > lo and (after := self._following(text, chunk_start, cut)) is not None:
                found = (cut, after)
        return found

    def first(self, text: str, lo: int, hi: int) -> int | None:
        for match in _END_MARK.finditer(text, lo, hi):
            if (after := self._following(text, lo, match.end())) is not None:
                return after
        return None


_PARAGRAPH, _LINE, _SENTENCE, _WORD = _Separator("\n\n"), _Separator("\n"), _Sentences(), _Separator(" ")

# Boundaries to try, coarsest first, per kind of section; the last one is also used for overlaps.
_LEVELS: dict[str, tuple] = {
    "text": (_PARAGRAPH, _LINE, _SENTENCE, _WORD),
    "code": (_PARAGRAPH, _LINE, _WORD),
    "table": (_LINE, _WORD),
}


# --- cutting one span into chunks ------------------------------------------------------------------

Piece = tuple[int, int, int]  # (start, end, estimate in units of `lib.tokens`)


_NOT_SPACE = re.compile(r"\S")


def _skip_space(text: str, at: int, end: int) -> int:
    if at < end and text[at].isspace():
        found = _NOT_SPACE.search(text, at, end)
        return found.start() if found else end
    return at


def _trim_space(text: str, start: int, at: int) -> int:
    while at > start and text[at - 1].isspace():
        at -= 1
    return at


def _chunk_span(counter: SpanCounter, start: int, end: int, limit: int, overlap: int, kind: str) -> list[Piece]:
    """Chunks of text[start:end], each within `limit` units of `lib.tokens`.

    The loop is the hot path of ingestion (a few passes per chunk, not per paragraph): the usual
    cut, at the coarsest boundary in the window (a paragraph or line break) with the chunk before
    it fitting, is taken inline with a `str.rfind` or two and one measurement; anything else goes
    to `_find_cut`.
    """
    text, units = counter.text, counter.units
    start, end = _skip_space(text, start, end), _trim_space(text, start, end)
    if start >= end:
        return []
    total = units(start, end)
    if total <= limit:
        return [(start, end, total)]
    levels = _LEVELS.get(kind, _LEVELS["text"])
    # the two coarsest levels are separators for every kind (paragraphs and lines; lines and
    # words in tables): the usual cut is at one of them
    coarsest, finer = levels[0], levels[1]
    per_char = total / (end - start)  # units per character, to place the window
    window = max(1, int(limit / per_char))
    reach = int(overlap / per_char)  # how far back an overlap may start, by the same density
    chunks: list[Piece] = []
    plain = counter.plain
    last_from = end - (window + window // 4)  # from here the rest may fit in one chunk
    # `after_previous` is where the text after the previous chunk starts (only whitespace lies
    # between): a chunk must reach past it, whatever it repeats of the previous one
    s = after_previous = start
    while True:
        if s >= last_from:
            size = units(s, end)
            if size <= limit:
                chunks.append((s, end, size))
                return chunks
        lo = after_previous
        hi = s + window
        if hi > end:
            hi = end
        if hi <= lo:
            hi = lo + 1
        level = coarsest
        at = text.rfind(level.separator, lo, hi + len(level.separator))
        if not lo < at <= hi:  # a paragraph longer than the window: cut at a line
            level = finer
            at = text.rfind(level.separator, lo, hi + len(level.separator))
        if lo < at <= hi:
            e = _trim_space(text, s, at) if text[at - 1].isspace() else at
            if plain is not None and e - s <= PLAIN_SPAN:
                size = (adler32(plain[s:e]) & 0xFFFF) - 1
            else:
                size = units(s, e)
            if size <= limit and e > lo:
                following = at + len(level.separator)
            else:
                s, e, following, size, level = _find_cut(counter, levels, s, lo, hi, end, window, limit)
        else:
            s, e, following, size, level = _find_cut(counter, levels, s, lo, hi, end, window, limit)
        chunks.append((s, e, size))
        if following < end and text[following].isspace():
            following = _skip_space(text, following, end)
        if following >= end:
            return chunks
        after_previous = following
        if overlap <= 0:
            s = following
        elif level is _PARAGRAPH or level is _LINE:
            s = _pieces_overlap(counter, level.separator, following, s, e, overlap, reach)
        else:
            s = _overlap_start(counter, level, following, s, e, overlap, reach)


def _find_cut(counter: SpanCounter, levels: tuple, s: int, lo: int, hi: int, end: int, window: int,
              limit: int) -> tuple[int, int, int, int, object]:
    """The general cut: the coarsest boundary in text(lo:hi] whose chunk from `s` fits, shrinking
    the window when the average density placed it too far; by size when no boundary fits. `lo` is
    where the text after the previous chunk starts, and `s` may be before it (an overlap).
    Returns (chunk start, chunk end, where the text after it starts, units, level cut at)."""
    text = counter.text
    while True:
        found = None
        for level in levels:
            found = level.last(text, s, lo, hi)
            if found is not None:
                break
        else:
            level = None
        e, following = found if found is not None else (hi, hi)  # no boundary: cut by size
        if text[e - 1].isspace():
            e = _trim_space(text, s, e)
        size = counter.units(s, e)
        if size <= limit and e > lo:
            return s, e, following, size, level
        # Too large (the window was placed by the average density): shrink it in proportion.
        shrunk = s + max(1, (max(e, lo + 1) - s) * limit // max(size, 1))
        hi = min(hi - 1, shrunk)
        if hi <= lo:
            if s < lo:  # the overlap leaves no room: start after it instead
                s = lo
                hi = min(end, s + window + 1)
                continue
            hi = lo + 1  # a single character over the limit: take it alone
            return s, hi, hi, counter.units(s, hi), level


def _overlap_start(counter: SpanCounter, level: object, following: int, chunk_start: int, chunk_end: int,
                   overlap: int, reach: int) -> int:
    """Where the next chunk starts after a cut at a sentence or word, so that it repeats whole
    trailing sentences or words of the previous one worth about `overlap` (`reach` characters at
    the span's average density); after a cut by size there is nothing whole to repeat."""
    if level is not _SENTENCE and level is not _WORD:
        return following
    # the first sentence (or word) that starts in the overlap window; the next chunk is
    # measured in full, so an overlap a little over its budget never makes it too large
    text = counter.text
    lo = max(chunk_start + 1, chunk_end - reach)
    at = level.first(text, lo, chunk_end)
    at = _skip_space(text, at, chunk_end) if at is not None else chunk_end
    return at if at < chunk_end else following


def _pieces_overlap(counter: SpanCounter, separator: str, following: int, chunk_start: int, chunk_end: int,
                    overlap: int, reach: int) -> int:
    """Where the next chunk starts after a cut at a paragraph or line break: the first whole
    paragraph (line) that starts within `reach` characters of the end, or the next one if that
    is over `overlap` by measure; usually one search and one measurement. A piece starts at its
    first non-space character, so a separator in the whitespace just before the reach still
    starts a piece within it."""
    text = counter.text
    lo = max(chunk_start + 1, chunk_end - reach)
    if text[lo - 1].isspace():
        lo = _trim_space(text, chunk_start + 1, lo)
    at = text.find(separator, lo, chunk_end)
    while at != -1:
        start = at + len(separator)
        if start < chunk_end and text[start].isspace():
            start = _skip_space(text, start, chunk_end)
        if start >= chunk_end:
            break
        if counter.units(start, chunk_end) <= overlap:
            return start
        at = text.find(separator, start, chunk_end)
    return following


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
    counter = SpanCounter(text)
    pieces = _chunk_span(counter, 0, len(text), size_tokens * UNITS_PER_TOKEN, overlap_tokens * UNITS_PER_TOKEN, kind)
    half = UNITS_PER_TOKEN // 2
    return [_new_chunk(Chunk, (text[s:e], s, e, (size + half) // UNITS_PER_TOKEN or 1, (), None, i, kind))
            for i, (s, e, size) in enumerate(pieces)]


def chunk_document(
    document: ExtractedDocument,
    size_tokens: int = DEFAULT_SIZE_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Chunk an extracted document section by section, keeping heading path, page and kind.

    Consecutive sections with the same heading path, page and kind are chunked together, so a
    heading followed by short paragraphs still gives full-size chunks; a new heading, page or a
    switch between prose, code and table starts a new chunk.
    """
    _check_sizes(size_tokens, overlap_tokens)
    text = document.text
    counter = SpanCounter(text)
    chunks: list[Chunk] = []
    runs: list[tuple[tuple, int, int]] = []  # (key, start, end) of each run of like sections
    for section in document.sections:
        key = (tuple(section.heading_path), section.page, section.kind)
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1], section.char_end)
        else:
            runs.append((key, section.char_start, section.char_end))
    for (heading_path, page, kind), start, end in runs:
        for s, e, size in _chunk_span(counter, start, end, size_tokens * UNITS_PER_TOKEN, overlap_tokens * UNITS_PER_TOKEN, kind):
            chunks.append(_new_chunk(Chunk, (text[s:e], s, e, to_tokens(size), heading_path, page, len(chunks),
                                             kind)))
    return chunks
