"""What `POST /api/rag` answers: search results (`answer: false`), an answer with citations, and
`finish.messageMetadata` of its stream.

Documentation models (see lib/shapes.py): the handler returns plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lib.shapes import Shape


class SearchReport(Shape):
    """The mode that actually ran: hybrid falls back to keyword when the namespace's embedding
    model is unavailable, and `notice` says why."""

    mode: Literal["hybrid", "keyword", "vector"]
    notice: str | None = None


class SearchResult(Shape):
    chunk_id: int
    document_id: str
    source: str
    title: str | None
    text: str
    score: float = Field(description="on the scale of the mode that ran: BM25, cosine similarity, or fused")
    scores: dict[str, float] = Field(description="per side: keyword, vector, hybrid")
    heading_path: list[str]
    page: int | None
    position: int
    char_start: int
    char_end: int
    metadata: dict[str, Any]


class SearchResponse(Shape):
    """`answer: false`: the passages, best first."""

    results: list[SearchResult]
    query: str
    namespace: str
    mode: Literal["hybrid", "keyword", "vector"]
    notice: str | None = None


class Citation(Shape):
    id: int = Field(description="the [n] the answer cites")
    chunk_id: int
    chunk_ids: list[int] = Field(description="neighbouring chunks merged into the cited passage")
    document_id: str
    source: str
    title: str | None
    page: int | None
    heading_path: list[str]
    quote: str = Field(description="the passage's sentence that best supports the answer")
    char_start: int = Field(description="offsets of the quote in the extracted document text")
    char_end: int


class AnswerUsage(Shape):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class AnswerResponse(Shape):
    """An answer with citations (`stream` false, the default for `query` bodies)."""

    answer: str
    citations: list[Citation]
    usage: AnswerUsage
    cost_usd: float
    conversation_id: str | None
    model: str
    extractive: bool = Field(description="true for local/extractive, which quotes instead of writing")
    search_query: str = Field(description="what was searched: a follow-up is rewritten into a standalone query")
    search: SearchReport


class AnswerMessageMetadata(Shape):
    """`finish.messageMetadata` of a rag UI message stream (`message.metadata` in useChat). Each
    citation also arrives as a `source-document` part (`source-url` for web addresses)."""

    finishReason: Literal["stop", "length", "tool-calls", "content-filter", "error", "other"]  # noqa: N815
    model: str
    usage: AnswerUsage
    costUsd: float  # noqa: N815
    citations: list[Citation]
    conversationId: str | None  # noqa: N815
    extractive: bool
    search: SearchReport
