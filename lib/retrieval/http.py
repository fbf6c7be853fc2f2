"""The rag function's edge: request fields -> a Question, and the result -> JSON or a stream.

A streamed answer is the AI SDK UI message stream: text parts, then one `source-document` (or
`source-url`, for sources that are web addresses) per citation, then `finish` whose
`messageMetadata` carries citations, usage, cost and the conversation id.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from lib import errors
from lib.providers.types import TextDelta
from lib.retrieval.answers import (
    Finished,
    Prepared,
    Question,
    answer,
    prepare,
    run_search,
    stream_answer,
)
from lib.retrieval.conversations import Turn
from lib.retrieval.request import ChatMessage, RagRequest
from lib.retrieval.search import SearchOptions
from lib.web import Request, StreamingResponse, sse_response


def message_text(message: ChatMessage) -> str:
    """The text of a useChat UIMessage (its text parts) or of a `{role, content}` message."""
    if message.parts:
        return "".join(p.get("text", "") for p in message.parts
                       if p.get("type") == "text" and isinstance(p.get("text"), str))
    return message.content or ""


def question_and_history(body: RagRequest) -> tuple[str, list[Turn] | None]:
    """The question (`query`, else the last user message) and the client's earlier turns."""
    history: list[Turn] | None = None
    if body.messages:
        turns = [Turn(m.role, message_text(m)) for m in body.messages if m.role in ("user", "assistant")]
        turns = [t for t in turns if t.content.strip()]
        if body.query is None:
            if not turns or turns[-1].role != "user":
                raise errors.field_error("messages", "the last message must be a user message with text")
            return turns[-1].content, turns[:-1]
        history = turns
    if body.query is None or not body.query.strip():
        raise errors.field_error("query", "send a non-empty query, or useChat messages")
    return body.query, history


def search_options(body: RagRequest) -> SearchOptions:
    weights = body.weights
    return SearchOptions(
        namespace=body.namespace, top_k=body.top_k, mode=body.mode, filter=body.filter,
        document_ids=[str(d) for d in body.document_ids or []], sources=list(body.sources or []),
        min_score=body.min_score, fusion=body.fusion,
        keyword_weight=weights.keyword if weights else 1.0,
        vector_weight=weights.vector if weights else 1.0,
    )


async def answer_request(request: Request, body: RagRequest) -> Any:
    settings = request.settings
    query, history = question_and_history(body)
    options = search_options(body)
    if not body.answer:
        hits = await run_search(query, options, settings)
        return {"results": [hit.to_json() for hit in hits], "query": query,
                "namespace": body.namespace, "mode": body.mode}
    question = Question(
        query=query, options=options, model=body.model, history=history,
        conversation_id=body.conversation_id or body.id, caller=request.caller, user_id=body.user,
        request_id=request.request_id, max_tokens=body.max_tokens, temperature=body.temperature,
    )
    prepared = await prepare(question, settings)
    streaming = body.stream if body.stream is not None else body.messages is not None
    if not streaming:
        return answer_json(prepared, await answer(prepared, settings))
    # Wait for the first piece before answering: until then a refusal or a provider failure
    # (budget, rate limit, every model down) is still a JSON error with the right status.
    events = await started(stream_answer(prepared, settings))
    if body.protocol == "text":
        return StreamingResponse(_text_chunks(events),
                                 headers={"cache-control": "no-cache, no-transform",
                                          "x-conversation-id": prepared.conversation_id or ""})
    return ui_stream_response(events, prepared)


async def started(events: AsyncIterator[TextDelta | Finished]) -> AsyncIterator[TextDelta | Finished]:
    """The same events, with the first one already produced."""
    first = await anext(events)

    async def chained() -> AsyncIterator[TextDelta | Finished]:
        yield first
        async for event in events:
            yield event

    return chained()


def answer_json(prepared: Prepared, finished: Finished) -> dict[str, Any]:
    return {
        "answer": finished.answer,
        "citations": finished.citations,
        "usage": finished.usage,
        "cost_usd": finished.cost_usd,
        "conversation_id": finished.conversation_id,
        "model": finished.model,
        "extractive": finished.extractive,
        "search_query": prepared.search_query,
    }


async def _text_chunks(events: AsyncIterator[TextDelta | Finished]) -> AsyncIterator[str]:
    async for event in events:
        if isinstance(event, TextDelta):
            yield event.text


def source_part(citation: dict[str, Any]) -> dict[str, Any]:
    """A citation as a UI message stream source part (only keys the AI SDK schema allows)."""
    from lib.gateway.ui_stream import source_document_part, source_url_part

    source = citation["source"] or ""
    title = citation["title"] or source
    source_id = f"{citation['document_id']}#{citation['chunk_id']}"
    if source.startswith(("http://", "https://")):
        return source_url_part(source_id, source, title)
    return source_document_part(source_id, title, filename=source.rsplit("/", 1)[-1] or None)


def ui_stream_response(events: AsyncIterator[TextDelta | Finished], prepared: Prepared) -> StreamingResponse:
    async def framed() -> AsyncIterator[dict[str, Any] | str]:
        async for part in _ui_parts(events):
            yield part
        yield "[DONE]"

    from lib.gateway.ui_stream import UI_STREAM_HEADERS

    return sse_response(framed(), headers={**UI_STREAM_HEADERS,
                                           "x-conversation-id": prepared.conversation_id or ""})


async def _ui_parts(events: AsyncIterator[TextDelta | Finished]) -> AsyncIterator[dict[str, Any]]:
    """The UI message stream parts of one answer, without the SSE framing."""
    text_id = uuid.uuid4().hex
    yield {"type": "start", "messageId": uuid.uuid4().hex}
    yield {"type": "start-step"}
    yield {"type": "text-start", "id": text_id}
    try:
        async for event in events:
            if isinstance(event, TextDelta):
                if event.text:
                    yield {"type": "text-delta", "id": text_id, "delta": event.text}
                continue
            if not isinstance(event, Finished):  # the model's stream broke off
                raise errors.UpstreamError(event.message, code=event.code)
            yield {"type": "text-end", "id": text_id}
            for citation in event.citations:
                yield source_part(citation)
            yield {"type": "finish-step"}
            yield {"type": "finish", "messageMetadata": {
                "finishReason": "stop", "model": event.model, "usage": event.usage,
                "costUsd": event.cost_usd, "citations": event.citations,
                "conversationId": event.conversation_id, "extractive": event.extractive}}
    except errors.ApiError as exc:
        yield {"type": "error", "errorText": exc.message}
