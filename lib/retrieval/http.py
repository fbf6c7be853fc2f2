"""The rag function's edge: request fields -> a Question, and the result -> JSON or a stream.

A stream goes through the same encoder as `/api/ai_execute` (`lib.gateway.ui_stream`). In the AI
SDK UI message stream, the answer's text is followed by one `source-document` (or `source-url`,
for sources that are web addresses) per citation, then `finish` whose `messageMetadata` carries
the finish reason, citations, usage, cost and the conversation id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.retrieval.answers import (
    AnswerPrompt,
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
from lib.web import Request, StreamingResponse

if TYPE_CHECKING:
    from lib.gateway.ui_stream import MessageFinished


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
        namespace=body.namespace, top_k=body.top_k, filter=body.filter,
        # fusion weights or a fusion method ask for fusion, whatever the namespace's embedder
        mode="hybrid" if body.mode == "auto" and {"weights", "fusion"} & body.model_fields_set else body.mode,
        document_ids=[str(d) for d in body.document_ids or []], sources=list(body.sources or []),
        min_score=body.min_score, fusion=body.fusion, ef_search=body.ef_search,
        keyword_weight=weights.keyword if weights else 1.0,
        vector_weight=weights.vector if weights else 1.0,
    )


async def answer_request(request: Request, body: RagRequest, *, prompt: AnswerPrompt | None = None,
                         metadata: dict[str, Any] | None = None) -> dict[str, Any] | StreamingResponse:
    """The search results, or the answer as JSON or a stream. `prompt` replaces the built-in answer
    prompt; `metadata` (which stored prompt and experiment variant served) joins the JSON response
    and the stream's finish metadata."""
    settings = request.settings
    query, history = question_and_history(body)
    options = search_options(body)
    if not body.answer:
        hits = await run_search(query, options, settings)
        return {"results": [hit.to_json() for hit in hits], "query": query,
                "namespace": body.namespace, **hits.report()}
    question = Question(
        query=query, options=options, model=body.model, history=history,
        conversation_id=body.conversation_id or body.id, caller=request.caller, user_id=request.user_id,
        request_id=request.request_id, max_tokens=body.max_tokens, temperature=body.temperature,
        prompt=prompt,
    )
    prepared = await prepare(question, settings)
    streaming = body.stream if body.stream is not None else body.messages is not None
    if not streaming:
        return {**answer_json(prepared, await answer(prepared, settings)), **(metadata or {})}
    from lib.gateway.ui_stream import stream_response  # it brings the model chain, which a search never needs

    events = ui_events(stream_answer(prepared, settings), prepared.hits.report(), metadata)
    return await stream_response(events, protocol=body.protocol,
                                 message_id=body.messageId,
                                 headers={"x-conversation-id": prepared.conversation_id or ""})


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
        "search": prepared.hits.report(),
    }


async def ui_events(events: AsyncIterator[Any], search: dict[str, Any],
                    metadata: dict[str, Any] | None = None) -> AsyncIterator[Any]:
    """The answer's events as the encoder reads them: its `Finished` becomes a `MessageFinished`."""
    async with aclosing(events):
        async for event in events:
            yield message_finished(event, search, metadata) if isinstance(event, Finished) else event


def message_finished(finished: Finished, search: dict[str, Any],
                     metadata: dict[str, Any] | None = None) -> MessageFinished:
    """A source part per citation before `finish`, and what `finish.messageMetadata` carries."""
    from lib.gateway.ui_stream import MessageFinished

    return MessageFinished(finished.finish_reason, {
        "model": finished.model, "usage": finished.usage, "costUsd": finished.cost_usd,
        "citations": finished.citations, "conversationId": finished.conversation_id,
        "extractive": finished.extractive, "search": search, **(metadata or {}),
    }, [source_part(citation) for citation in finished.citations])


def source_part(citation: dict[str, Any]) -> dict[str, Any]:
    """A citation as a UI message stream source part (only keys the AI SDK schema allows)."""
    from lib.gateway.ui_stream import source_document_part, source_url_part

    source = citation["source"] or ""
    title = citation["title"] or source
    source_id = f"{citation['document_id']}#{citation['chunk_id']}"
    if source.startswith(("http://", "https://")):
        return source_url_part(source_id, source, title)
    return source_document_part(source_id, title, filename=source.rsplit("/", 1)[-1] or None)
