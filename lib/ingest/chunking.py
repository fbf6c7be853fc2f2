"""Structure-aware chunking: text -> chunks of at most N tokens, with overlap.

Each chunk ends at the coarsest boundary inside the window a chunk can cover: the last paragraph
break (blank line) in the window, else the last line break, else the last sentence end, else the
last space, and only for one unbroken run longer than a chunk (a base64 blob) at a size. A
paragraph larger than a chunk therefore starts a chunk of its own and is cut at sentences, as a
recursive splitter would. Each new chunk repeats whole trailing pieces of the previous one at the
level it was cut at (paragraphs, lines, sentences or words), worth about `overlap_tokens`, as a
recursive splitter's overlap does.

How it stays fast and linear: the window is as many characters as a chunk's worth of tokens
covered in the chunk before, so each chunk costs a `str.rfind` or two for its end, one
measurement (`lib.tokens.count_tokens` on the candidate, about 2 ns a character) and a `str.find`
for the next chunk's start, whatever the number of paragraphs in it. A candidate over the size
(the window was placed by the density of the text before) shrinks in proportion and is measured
again.

Chunks never cross a heading or a page: `chunk_document` chunks each run of sections with the same
heading path, page and kind on its own; code and tables are cut at lines, never at sentences.

Deterministic: the same text and options give the same chunks. Every chunk's `text` is exactly
`source[char_start:char_end]`, with no whitespace at either end, and its `token_count` is
`count_tokens(text)`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from lib.tokens import count_tokens

if TYPE_CHECKING:
    from lib.ingest.documents import ExtractedDocument

DEFAULT_SIZE_TOKENS = 400
DEFAULT_OVERLAP_TOKENS = 60

# The first window, before any chunk of the text has been measured (prose runs at about four
# characters a token); the widest a window may grow, so that a stretch of blank space cannot make
# the next candidate the whole rest of the text; and how much of the size a window aims at (a
# window placed too far costs a second measurement).
_FIRST_CHARS_PER_TOKEN = 4
_MOST_CHARS_PER_TOKEN = 16
_AIM_PERCENT = 97


class Chunk(NamedTuple):
    """One piece of a document, ready to embed. Offsets index the extracted text."""

    text: str
    char_start: int
    char_end: int
    token_count: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    position: int = 0
    kind: str = "text"  # text | code | table


# Builds a Chunk from a tuple of all its fields, as `Chunk._make` does but without a Python-level
# call: the named tuple's own `__new__` (eight keyword-capable arguments) is a tenth of the
# chunker's time on a large upload.
_new_chunk = tuple.__new__

# --- boundaries ----------------------------------------------------------------------------------
#
# A level of boundaries is a separator string (a blank line, a line break, a space) or
# `SENTENCE_END`. Chunks end before a boundary with no whitespace at their end, and the text after
# it starts at its first character that is not whitespace.

_NOT_SPACE = re.compile(r"\S")


def _skip_space(text: str, at: int) -> int:
    """The first position from `at` that is not whitespace (the text's end if none is)."""
    if at < len(text) and text[at].isspace():
        found = _NOT_SPACE.search(text, at)
        return found.start() if found else len(text)
    return at


def _trim_space(text: str, lo: int, at: int) -> int:
    """`at` moved back over the whitespace before it, not past `lo`."""
    while at > lo and text[at - 1].isspace():
        at -= 1
    return at


# A sentence ends at `.`, `!` or `?` (maybe closing a quote or bracket) followed by whitespace and
# then a capital letter, a digit or an opening quote; or at a full-width CJK stop. The pattern
# opens with a character class, so the regex engine skips ahead at C speed; the rest is checked
# in Python only for the few candidates it finds.
SENTENCE_END = "sentence end"
_END_MARK = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]?(?=\s)|[\u3002\uff01\uff1f]")
_OPENERS = "\"'\u201c\u2018(["
# Words after which a period does not end a sentence ("Dr. Smith", "e.g. This").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp fig no vol pp eq approx dept est"
    " e.g i.e cf al jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


def _ends_with_abbreviation(text: str, lo: int, cut: int) -> bool:
    if text[cut - 1] != ".":
        return False  # "?" and "!" and closing quotes always end a sentence
    space = max(text.rfind(" ", max(lo, cut - 12), cut), text.rfind("\n", max(lo, cut - 12), cut))
    word = text[max(lo, space + 1, cut - 12):cut - 1].lstrip("(\"'\u201c").lower()
    return (len(word) == 1 and word.isalpha()) or word in _ABBREVIATIONS


def _next_sentence(text: str, lo: int, cut: int) -> int | None:
    """Where the next sentence starts if the end mark just before `cut` ends one, else None."""
    after = _skip_space(text, cut)
    if text[cut - 1] in "\u3002\uff01\uff1f":
        return after
    if after >= len(text):
        return None
    following = text[after + 1] if text[after] in _OPENERS and after + 1 < len(text) else text[after]
    if (following.isupper() or following.isdigit()) and not _ends_with_abbreviation(text, lo, cut):
        return after
    return None


def _last_boundary(text: str, levels: tuple[str, ...], lo: int, hi: int) -> tuple[int, int, str | None]:
    """The last boundary in text(lo:hi] of the coarsest level that has one, as (where the chunk
    before it ends, where the text after it starts, the level); at `hi` (level None) if none has."""
    for level in levels:
        if level is SENTENCE_END:
            found = None
            for match in _END_MARK.finditer(text, lo, hi):
                if (after := _next_sentence(text, lo, match.end())) is not None:
                    found = match.end(), after, level
            if found is not None:
                return found
            continue
        # a separator may reach past `hi`: the chunk before it ends where it begins
        after = len(level)
        at = text.rfind(level, lo, hi + after)
        if lo < at <= hi:
            after += at
            return (_trim_space(text, lo, at) if text[at - 1].isspace() else at,
                    _skip_space(text, after) if text[after:after + 1].isspace() else after, level)
    return _trim_space(text, lo, hi), _skip_space(text, hi), None


def _first_piece(text: str, level: str, lo: int, hi: int) -> int:
    """Where the first piece of `level` (paragraph, line, sentence, word) that starts in
    text[lo:hi] begins, or -1."""
    if level is SENTENCE_END:
        for match in _END_MARK.finditer(text, lo, hi):
            if (after := _next_sentence(text, lo, match.end())) is not None:
                return after
        return -1
    at = text.find(level, lo, hi)
    if at == -1:
        return -1
    at += len(level)
    return _skip_space(text, at) if text[at:at + 1].isspace() else at


# Boundaries to try, coarsest first, per kind of section.
_LEVELS = {
    "text": ("\n\n", "\n", SENTENCE_END, " "),
    "code": ("\n\n", "\n", " "),
    "table": ("\n", " "),
}


# --- cutting one span into chunks ------------------------------------------------------------------


def _chunk_span(chunks: list[Chunk], text: str, start: int, end: int, size: int, overlap: int, kind: str,
                heading_path: tuple[str, ...] = (), page: int | None = None) -> None:
    """Append to `chunks` the chunks of text[start:end], each of at most `size` tokens, each but
    the first repeating about `overlap` tokens of the one before."""
    levels = _LEVELS.get(kind, _LEVELS["text"])
    start, end = _skip_space(text, start), _trim_space(text, start, end)
    window = size * _FIRST_CHARS_PER_TOKEN  # how many characters a chunk covers, as last measured
    fresh = start  # where the text that no chunk holds yet starts
    while start < end:
        if end - start <= window + window // 4:  # the rest may fit in one chunk
            rest = text[start:end]
            tokens = count_tokens(rest)
            if tokens <= size:
                chunks.append(_new_chunk(Chunk, (rest, start, end, tokens, heading_path, page, len(chunks), kind)))
                return
        # the chunk ends at the last boundary in the window, of the coarsest level that has one
        hi = start + window if start + window < end else end
        chunk_end, following, level = _last_boundary(text, levels, fresh, hi if hi > fresh else fresh + 1)
        piece = text[start:chunk_end]
        tokens = count_tokens(piece)
        if tokens > size:  # the text is denser here than before: narrow the window until one fits
            start, chunk_end, following, level, piece, tokens = _narrowed(text, levels, start, fresh, chunk_end,
                                                                          tokens, end, window, size)
        chunks.append(_new_chunk(Chunk, (piece, start, chunk_end, tokens, heading_path, page, len(chunks), kind)))
        if following >= end:
            return
        # the next window: as many characters as this chunk had per token, aimed a little short
        window = size * (chunk_end - start) * _AIM_PERCENT // (100 * tokens) or 1
        if window > size * _MOST_CHARS_PER_TOKEN:
            window = size * _MOST_CHARS_PER_TOKEN
        # The next chunk starts at the first whole piece of the level just cut at (paragraph,
        # line, sentence, word) within the overlap's reach of this chunk's end, if any.
        reach = window * overlap // size
        at = _first_piece(text, level, chunk_end - reach if chunk_end - reach > start else start + 1,
                          chunk_end) if level and reach else -1
        start = at if 0 <= at < chunk_end else following
        fresh = following


def _narrowed(text: str, levels: tuple[str, ...], start: int, fresh: int, chunk_end: int, tokens: int, end: int,
              window: int, size: int) -> tuple[int, int, int, str | None, str, int]:
    """The chunk from `start` when the candidate that ended at `chunk_end` had `tokens` over
    `size`: the window shrinks in proportion to the excess until a candidate fits. `fresh` is
    where the text after the previous chunk starts; the chunk must reach past it, so when the
    repeated text before it leaves no room the chunk starts there instead, and a single character
    over the size is a chunk of its own.
    Returns (start, end, where the text after it starts, level cut at, text, tokens)."""
    while True:
        hi = min(chunk_end - 1, start + (chunk_end - start) * size // tokens)
        if hi <= fresh:
            if start == fresh:
                return start, start + 1, _skip_space(text, start + 1), None, text[start], count_tokens(text[start])
            start, hi = fresh, min(end, fresh + window)
        chunk_end, following, level = _last_boundary(text, levels, fresh, hi)
        piece = text[start:chunk_end]
        tokens = count_tokens(piece)
        if tokens <= size:
            return start, chunk_end, following, level, piece, tokens


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
    """Cut plain text into chunks of at most `size_tokens`, overlapping by about `overlap_tokens`."""
    _check_sizes(size_tokens, overlap_tokens)
    chunks: list[Chunk] = []
    _chunk_span(chunks, text, 0, len(text), size_tokens, overlap_tokens, kind)
    return chunks


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
    runs: list[tuple[tuple, int, int]] = []  # (key, start, end) of each run of like sections
    for section in document.sections:
        key = (tuple(section.heading_path), section.page, section.kind)
        if runs and runs[-1][0] == key:
            runs[-1] = (key, runs[-1][1], section.char_end)
        else:
            runs.append((key, section.char_start, section.char_end))
    chunks: list[Chunk] = []
    for (heading_path, page, kind), start, end in runs:
        _chunk_span(chunks, document.text, start, end, size_tokens, overlap_tokens, kind, heading_path, page)
    return chunks
