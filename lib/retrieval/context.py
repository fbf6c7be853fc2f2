"""From search hits to an answer's context and citations: packing, the prompt, quotes, extracts.

- `pack_context` fits the best hits into a token budget as numbered passages, merging neighbouring
  chunks of one document (their overlap is not repeated) and never including a chunk twice.
- `build_prompt` asks the model to answer only from the passages and cite them as [n].
- `cite` turns the [n] markers of an answer into citations, each with the passage sentence that
  best supports the answer (the quoted span) and its offsets in the document.
- `extractive_answer` answers without a model: the passages' own sentences that best match the
  question, cited the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lib.retrieval.search import SearchHit
from lib.tokens import count_tokens

NO_ANSWER = "I could not find the answer in the indexed documents."
EXTRACTIVE_LABEL = "Extractive answer (sentences quoted from the documents, no language model used):"

SYSTEM_PROMPT = """You answer questions using only the numbered context passages you are given.
Rules:
- Use only facts stated in the passages; never add outside knowledge.
- Cite the passage(s) supporting each sentence with their numbers in square brackets, e.g. [1] or [2][3].
- If the passages do not contain the answer, reply exactly: "{no_answer}" and nothing else.
- Be concise."""


@dataclass
class Passage:
    """One numbered piece of context: one chunk, or neighbouring chunks of one document merged."""

    number: int
    hits: list[SearchHit]
    text: str
    score: float

    @property
    def first(self) -> SearchHit:
        return self.hits[0]

    @property
    def chunk_ids(self) -> list[int]:
        return [hit.chunk_id for hit in self.hits]

    def describe(self) -> str:
        parts = [f"source: {self.first.source}"]
        if self.first.title:
            parts.append(f"title: {self.first.title}")
        if self.first.heading_path:
            parts.append("section: " + " > ".join(self.first.heading_path))
        if self.first.page is not None:
            parts.append(f"page {self.first.page}")
        return "; ".join(parts)


@dataclass
class Citation:
    number: int
    passage: Passage
    quote: str
    quote_start: int  # offsets of the quote in the extracted document text
    quote_end: int
    chunk_id: int = 0

    def to_json(self) -> dict[str, Any]:
        first = self.passage.first
        return {
            "id": self.number, "chunk_id": self.chunk_id or first.chunk_id,
            "chunk_ids": self.passage.chunk_ids, "document_id": first.document_id,
            "source": first.source, "title": first.title, "page": first.page,
            "heading_path": first.heading_path, "quote": self.quote,
            "char_start": self.quote_start, "char_end": self.quote_end,
        }


# --- packing ----------------------------------------------------------------------------------


def _join_adjacent(before: SearchHit, after: SearchHit, before_text: str) -> str:
    """`before_text` (ending with chunk `before`) followed by chunk `after`, overlap removed."""
    overlap = before.char_end - after.char_start
    if 0 < overlap < len(after.text) and before_text.endswith(after.text[:overlap]):
        return before_text + after.text[overlap:]
    return before_text + "\n" + after.text


def _merged_text(hits: list[SearchHit]) -> str:
    text = hits[0].text
    for previous, current in zip(hits, hits[1:], strict=False):
        text = _join_adjacent(previous, current, text)
    return text


def pack_context(hits: list[SearchHit], budget_tokens: int) -> list[Passage]:
    """The best hits, in rank order, as passages that fit together in `budget_tokens`."""
    passages: list[Passage] = []
    seen: set[int] = set()
    used = 0
    for hit in hits:
        if hit.chunk_id in seen:
            continue
        neighbour = next(
            (p for p in passages if p.first.document_id == hit.document_id
             and (hit.position == p.hits[0].position - 1 or hit.position == p.hits[-1].position + 1)),
            None,
        )
        if neighbour is not None:
            merged_hits = sorted([*neighbour.hits, hit], key=lambda h: h.position)
            merged_text = _merged_text(merged_hits)
            cost = count_tokens(merged_text) - count_tokens(neighbour.text)
            if used + cost > budget_tokens:
                continue
            neighbour.hits, neighbour.text = merged_hits, merged_text
        else:
            cost = count_tokens(hit.text)
            if used + cost > budget_tokens:
                continue
            passages.append(Passage(len(passages) + 1, [hit], hit.text, hit.score))
        used += cost
        seen.add(hit.chunk_id)
    return passages


def numbered_passages(passages: list[Passage]) -> str:
    """The passages as the model reads them: `[n] (where it comes from)` then the text."""
    return "\n\n".join(f"[{p.number}] ({p.describe()})\n{p.text}" for p in passages)


def build_prompt(question: str, passages: list[Passage]) -> tuple[str, str]:
    """(system, user message) for an answer grounded in `passages`."""
    user = "Context passages:\n\n" + numbered_passages(passages) + f"\n\nQuestion: {question}"
    return SYSTEM_PROMPT.format(no_answer=NO_ANSWER), user


# --- sentences and terms ----------------------------------------------------------------------

# a sentence ends at . ! ? before a capital, at a blank line, before a list item, or at a line
# break before a capital (titles and table rows from PDFs)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*#\d])|\n(?=[A-Z])")
MAX_QUOTE_CHARS = 300
_WORD = re.compile(r"[A-Za-z0-9]+")
_STOP = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is "
    "it its may might not of on or our should so such than that the their them then there these they "
    "this those to was we were what when where which while who whom why will with would you your".split()
)


def _stem(word: str) -> str:
    for suffix in ("ingly", "edly", "ings", "ing", "ies", "ied", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
    return word


def terms(text: str) -> set[str]:
    """Content words, lower-cased and crudely stemmed: enough to compare a sentence and a question."""
    return {_stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP and len(w) > 1}


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the sentences of `text`, trimmed of whitespace."""
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    result = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            result.append((s, e))
    return result


def _document_offset(passage: Passage, start: int) -> int:
    """Offsets in passage text -> offsets in the document (exact unless chunks did not line up)."""
    return passage.first.char_start + start


def _chunk_at(passage: Passage, doc_offset: int) -> int:
    for hit in passage.hits:
        if hit.char_start <= doc_offset < hit.char_end:
            return hit.chunk_id
    return passage.first.chunk_id


def _shortened(text: str, start: int, end: int) -> int:
    """End of a quote of at most MAX_QUOTE_CHARS, cut at a word boundary (code has no sentences)."""
    if end - start <= MAX_QUOTE_CHARS:
        return end
    cut = text.rfind(" ", start, start + MAX_QUOTE_CHARS)
    return cut if cut > start else start + MAX_QUOTE_CHARS


def best_quote(passage: Passage, claim: str) -> Citation:
    """The passage sentence sharing the most words with `claim` (the first when none does)."""
    wanted = terms(claim)
    best: tuple[float, int, int] | None = None
    for start, end in sentences(passage.text):
        overlap = len(wanted & terms(passage.text[start:end]))
        if best is None or overlap > best[0]:
            best = (overlap, start, end)
    _, start, end = best or (0, 0, len(passage.text))
    end = _shortened(passage.text, start, end)
    doc_start = _document_offset(passage, start)
    return Citation(passage.number, passage, passage.text[start:end], doc_start,
                    doc_start + (end - start), _chunk_at(passage, doc_start))


# --- citations of a model's answer ------------------------------------------------------------

_MARKER = re.compile(r"\[(\d{1,3})\]")


def cite(answer: str, passages: list[Passage]) -> list[Citation]:
    """One citation per passage the answer cites as [n], in order of first mention."""
    by_number = {p.number: p for p in passages}
    claims: dict[int, list[str]] = {}
    for start, end in sentences(answer):
        sentence = answer[start:end]
        for match in _MARKER.finditer(sentence):
            number = int(match.group(1))
            if number in by_number:
                claims.setdefault(number, []).append(_MARKER.sub("", sentence))
    return [best_quote(by_number[n], " ".join(texts)) for n, texts in claims.items()]


# --- the extractive answer --------------------------------------------------------------------


@dataclass
class Extract:
    text: str
    citations: list[Citation] = field(default_factory=list)
    found: bool = True


def _is_prose(sentence: str) -> bool:
    """Headings and fragments say little on their own; quote sentences."""
    return (not sentence.lstrip().startswith("#") and len(_WORD.findall(sentence)) >= 4
            and len(sentence) <= 2 * MAX_QUOTE_CHARS)


def extractive_answer(question: str, passages: list[Passage], max_sentences: int = 3) -> Extract:
    """The passages' sentences that best cover the question's words, each cited, best first.

    When no sentence covers at least a third of the question's words, it says the documents do
    not contain the answer rather than quote something unrelated.
    """
    wanted = terms(question)
    if not wanted or not passages:
        return Extract(NO_ANSWER, found=False)
    scored: list[tuple[float, int, int, int]] = []
    for rank, passage in enumerate(passages):
        for start, end in sentences(passage.text):
            if not _is_prose(passage.text[start:end]):
                continue
            covered = len(wanted & terms(passage.text[start:end])) / len(wanted)
            # earlier (better ranked) passages win ties
            scored.append((covered - rank * 1e-3, rank, start, end))
    scored.sort(key=lambda item: -item[0])
    chosen = [item for item in scored[:max_sentences] if item[0] >= 1 / 3 - 1e-2]
    if not chosen:
        return Extract(NO_ANSWER, found=False)
    lines = [EXTRACTIVE_LABEL]
    citations: dict[int, Citation] = {}
    for _, rank, start, end in chosen:
        passage = passages[rank]
        quote = passage.text[start:end]
        lines.append(f"- {quote} [{passage.number}]")
        if passage.number not in citations:
            doc_start = _document_offset(passage, start)
            citations[passage.number] = Citation(passage.number, passage, quote, doc_start,
                                                 doc_start + len(quote), _chunk_at(passage, doc_start))
    return Extract("\n".join(lines), list(citations.values()))
