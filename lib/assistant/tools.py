"""Tools the server runs itself, over the request's namespace: the model calls them, the assistant
loop runs them and feeds the results back.

- `search_documents {query, top_k?}`: hybrid search (BM25 + vectors) over the namespace, packed
  into numbered passages as rag packs them. Numbers run on across the searches of one answer, and
  the answer's `[n]` markers become its citations.
- `fetch_document {document_id, offset?}`: a document's text, put back together from its chunks,
  at most `fetch_tokens` tokens at a time; `next_offset` reads on.

The namespace is the request's, which the caller was allowed to use (`request.require_namespace`);
a tool call cannot name another. A tool that fails (bad arguments, an unknown document, a database
error) returns its error as the tool result, so the model can say so or try again: it is never a
5xx, and the failure is logged with the request id.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.config import Settings
from lib.logs import log, scrub
from lib.providers.types import Message, Tool, ToolCall
from lib.tokens import truncate_to_tokens

if TYPE_CHECKING:
    from lib.retrieval.context import Passage

TOOL_TIMEOUT_S = 30.0
MAX_TOP_K = 10

SEARCH_DOCUMENTS = Tool(
    "search_documents",
    "Search the documents of this workspace (hybrid keyword and semantic search). Returns numbered "
    "passages with their source; cite the passages you use as [n], with their numbers.",
    {"type": "object", "properties": {
        "query": {"type": "string", "description": "what to look for, as a standalone search query"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K,
                  "description": "how many passages (default 5)"}},
     "required": ["query"]},
)
FETCH_DOCUMENT = Tool(
    "fetch_document",
    "Read the text of one document by its document_id (from search_documents results). Long "
    "documents come in pieces: call again with offset set to next_offset to read on.",
    {"type": "object", "properties": {
        "document_id": {"type": "string", "description": "the document_id of a search result"},
        "offset": {"type": "integer", "minimum": 0, "description": "character offset to start at (default 0)"}},
     "required": ["document_id"]},
)
DEFINITIONS = {tool.name: tool for tool in (SEARCH_DOCUMENTS, FETCH_DOCUMENT)}
INSTRUCTIONS = ("You can search this workspace's documents with search_documents. Answer from the passages "
                "it returns, cite each passage you use as [n] with its number, and say so when the "
                "documents do not answer the question.")

DOCUMENT_CHUNKS_SQL = """
SELECT d.id::text, d.source, d.title, d.media_type, c.text, c.char_start, c.char_end
FROM documents d JOIN chunks c ON c.document_id = d.id
WHERE d.namespace = %(namespace)s AND d.id = %(document_id)s
ORDER BY c.position
"""


class ToolFailed(Exception):
    """A tool call that cannot be answered; its message becomes the tool result."""


@dataclass
class ToolRun:
    """One server tool call and what came of it: `output` (any JSON) or `error`."""

    call: ToolCall
    output: Any = None
    error: str | None = None
    latency_ms: float = 0.0

    def message(self) -> Message:
        """The result as the model reads it."""
        content = json.dumps({"error": self.error} if self.error is not None else self.output, ensure_ascii=False)
        return Message("tool", content, tool_call_id=self.call.id, name=self.call.name)


@dataclass
class ServerTools:
    """The server tools of one request, and the passages they have shown the model so far."""

    names: list[str]
    namespace: str
    settings: Settings
    request_id: str = ""
    passage_tokens: int = 3000  # what one search may return (CONTEXT_TOKENS, less for a small window)
    fetch_tokens: int = 4000  # what one fetch_document call may return
    passages: list[Passage] = field(default_factory=list)

    def definitions(self) -> list[Tool]:
        return [DEFINITIONS[name] for name in self.names]

    def runs(self, call: ToolCall) -> bool:
        return call.name in self.names

    def instructions(self) -> str | None:
        return INSTRUCTIONS if "search_documents" in self.names else None

    async def run(self, call: ToolCall) -> ToolRun:
        """Run one call; whatever goes wrong comes back as the run's `error`."""

        started = time.monotonic()
        run = ToolRun(call)
        try:
            arguments = call.parsed_arguments()
            if not isinstance(arguments, dict):
                raise ToolFailed("the arguments must be a JSON object")
            async with asyncio.timeout(TOOL_TIMEOUT_S):
                if call.name == "search_documents":
                    run.output = await self.search(arguments)
                else:
                    run.output = await self.fetch(arguments)
        except ToolFailed as exc:
            run.error = str(exc)
        except errors.ApiError as exc:  # a bad filter, the database unreachable: the model is told
            run.error = exc.message
            if exc.status >= 500:
                log("warning", "server_tool_failed", request_id=self.request_id, tool=call.name, code=exc.code,
                    detail=exc.message)
        except TimeoutError:
            run.error = f"{call.name} took longer than {TOOL_TIMEOUT_S:g} s and was stopped"
        except Exception as exc:  # noqa: BLE001 - a tool's fault is the model's tool result, never a 500
            log("error", "server_tool_failed", request_id=self.request_id, tool=call.name,
                exception=type(exc).__name__, detail=scrub(repr(exc))[:2000])
            run.error = f"{call.name} failed with an internal error (request id {self.request_id})"
        run.latency_ms = (time.monotonic() - started) * 1000
        return run

    async def search(self, arguments: dict[str, Any]) -> dict[str, Any]:
        from lib.retrieval.answers import run_search
        from lib.retrieval.context import pack_context
        from lib.retrieval.search import SearchOptions

        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed("`query` must be a non-empty string")
        top_k = arguments.get("top_k", 5)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise ToolFailed(f"`top_k` must be a whole number from 1 to {MAX_TOP_K}")
        # "auto", as /api/rag searches by default: hybrid, or keywords alone for a lexical embedding model
        options = SearchOptions(namespace=self.namespace, top_k=top_k, mode="auto")
        hits = await run_search(query[:2000], options, self.settings)
        passages = pack_context(hits, self.passage_tokens)
        for passage in passages:  # numbered on from the passages earlier searches showed
            passage.number += len(self.passages)
        self.passages.extend(passages)
        result: dict[str, Any] = {"query": query, "passages": [_passage_json(p) for p in passages],
                                  **hits.report()}
        if not passages:
            result["note"] = "no passage of the documents matches this query"
        return result

    async def fetch(self, arguments: dict[str, Any]) -> dict[str, Any]:
        from lib import db

        raw_id, offset = arguments.get("document_id"), arguments.get("offset", 0)
        try:
            document_id = str(uuid.UUID(str(raw_id)))
        except ValueError:
            raise ToolFailed(f"{raw_id!r} is not a document id (a UUID from search_documents)") from None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ToolFailed("`offset` must be a whole number, 0 or more")
        async with db.connect(self.settings) as conn:
            cur = await conn.execute(DOCUMENT_CHUNKS_SQL, {"namespace": self.namespace, "document_id": document_id})
            rows = await cur.fetchall()
        if not rows:
            raise ToolFailed(f"there is no document {document_id} in this workspace")
        text = _reassembled([(row[4], row[5], row[6]) for row in rows])
        piece = truncate_to_tokens(text[offset:], self.fetch_tokens)
        end = offset + len(piece)
        result = {"document_id": rows[0][0], "source": rows[0][1], "title": rows[0][2], "media_type": rows[0][3],
                  "offset": offset, "total_chars": len(text), "text": piece, "truncated": end < len(text)}
        if end < len(text):
            result["next_offset"] = end
        return result

    def citations(self, text: str) -> list[dict[str, Any]]:
        """The answer's [n] markers, as citations of the passages its searches showed."""
        from lib.retrieval.context import cite

        return [c.to_json() for c in cite(text, self.passages)] if self.passages else []


def _passage_json(passage: Passage) -> dict[str, Any]:
    first = passage.first
    data: dict[str, Any] = {"ref": passage.number, "document_id": first.document_id, "source": first.source,
                            "title": first.title, "text": passage.text}
    if first.heading_path:
        data["section"] = " > ".join(first.heading_path)
    if first.page is not None:
        data["page"] = first.page
    return data


def _reassembled(chunks: list[tuple[str, int, int]]) -> str:
    """A document's text from its chunks in order: each chunk is `text[char_start:char_end]` of the
    extracted document, so overlaps are cut and the gaps between sections become line breaks."""
    parts: list[str] = []
    end = 0
    for text, start, stop in chunks:
        if start >= end:
            if parts:
                parts.append("\n")
            parts.append(text)
        elif stop > end:
            parts.append(text[end - start:])
        end = max(end, stop)
    return "".join(parts)
