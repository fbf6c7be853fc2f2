"""Encoders for streamed answers: the AI SDK UI message stream that `useChat` reads, and plain text.

The UI message stream is SSE (`data: {json}` events, ending with `data: [DONE]`) with the header
`x-vercel-ai-ui-message-stream: v1`. Each chunk carries only keys the AI SDK v5 schema allows
(several client versions reject any other key):

    start{messageId} start-step text-start{id} text-delta{id,delta} text-end{id}
    tool-input-start{toolCallId,toolName} tool-input-available{toolCallId,toolName,input}
    source-url{sourceId,url,title?} source-document{sourceId,mediaType,title,filename?}
    finish-step finish{messageMetadata} | error{errorText}

Callers (answers with citations) add parts just before `finish` with `before_finish`:

    ui_message_response(events, before_finish=lambda: [source_url_part("s1", url, title)])
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from lib.gateway.chain import ChatCompleted, StreamFailed
from lib.providers.types import StreamFinished, TextDelta, ToolCallReady, ToolCallStarted
from lib.web import StreamingResponse, sse_response

UI_STREAM_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
# The AI SDK's finish reasons (`finish.messageMetadata.finishReason`) for ours.
_UI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool-calls",
              "content_filter": "content-filter", "error": "error", "other": "other"}

ExtraParts = Callable[[], Iterable[dict[str, Any]] | Awaitable[Iterable[dict[str, Any]]]]


def source_url_part(source_id: str, url: str, title: str | None = None) -> dict[str, Any]:
    part = {"type": "source-url", "sourceId": source_id, "url": url}
    if title:
        part["title"] = title
    return part


def source_document_part(source_id: str, title: str, media_type: str = "text/plain",
                         filename: str | None = None) -> dict[str, Any]:
    part = {"type": "source-document", "sourceId": source_id, "mediaType": media_type, "title": title}
    if filename:
        part["filename"] = filename
    return part


def finish_metadata(result: Any) -> dict[str, Any]:
    """What the client gets in `finish.messageMetadata`: usage, cost and who answered."""
    r = result.response
    return {"finishReason": _UI_FINISH.get(r.finish_reason, "other"), "model": result.model,
            "provider": result.provider, "usage": r.usage.as_dict(), "costUsd": result.cost_usd,
            "latencyMs": round(result.latency_ms, 1), "cached": result.cached}


async def ui_message_chunks(events: AsyncIterator[Any], *, message_id: str | None = None,
                            before_finish: ExtraParts | None = None) -> AsyncIterator[dict[str, Any] | str]:
    """Our stream events -> UI message stream chunks, then the `[DONE]` marker."""
    yield {"type": "start", "messageId": message_id or f"msg-{uuid.uuid4().hex}"}
    yield {"type": "start-step"}
    text_id: str | None = None
    parts = 0

    def end_text() -> list[dict[str, Any]]:
        nonlocal text_id
        if text_id is None:
            return []
        ended, text_id = {"type": "text-end", "id": text_id}, None
        return [ended]

    async for event in events:
        if isinstance(event, TextDelta):
            if text_id is None:
                parts += 1
                text_id = f"text-{parts}"
                yield {"type": "text-start", "id": text_id}
            yield {"type": "text-delta", "id": text_id, "delta": event.text}
        elif isinstance(event, ToolCallStarted):
            for chunk in end_text():
                yield chunk
            yield {"type": "tool-input-start", "toolCallId": event.id, "toolName": event.name}
        elif isinstance(event, ToolCallReady):
            for chunk in end_text():
                yield chunk
            yield {"type": "tool-input-available", "toolCallId": event.call.id, "toolName": event.call.name,
                   "input": event.call.parsed_arguments()}
        elif isinstance(event, StreamFinished):
            for chunk in end_text():
                yield chunk
        elif isinstance(event, StreamFailed):
            for chunk in end_text():
                yield chunk
            yield {"type": "error", "errorText": event.message}
            yield "[DONE]"
            return
        elif isinstance(event, ChatCompleted):
            for chunk in end_text():
                yield chunk
            if before_finish is not None:
                extra = before_finish()
                if hasattr(extra, "__await__"):
                    extra = await extra
                for part in extra:
                    yield part
            yield {"type": "finish-step"}
            yield {"type": "finish", "messageMetadata": finish_metadata(event.result)}
    yield "[DONE]"


def ui_message_response(events: AsyncIterator[Any], *, message_id: str | None = None,
                        before_finish: ExtraParts | None = None) -> StreamingResponse:
    """The UI message stream as an SSE response `useChat` reads directly."""
    return sse_response(ui_message_chunks(events, message_id=message_id, before_finish=before_finish),
                        UI_STREAM_HEADERS)


async def text_chunks(events: AsyncIterator[Any]) -> AsyncIterator[str]:
    """Only the text, as it comes (the AI SDK's `streamProtocol: 'text'`). A failure mid-stream ends
    the text early; it is recorded in the ledger and the log, as there is no way to say it here."""
    async for event in events:
        if isinstance(event, TextDelta) and event.text:
            yield event.text


def text_response(events: AsyncIterator[Any]) -> StreamingResponse:
    return StreamingResponse(text_chunks(events), 200,
                             {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"},
                             "text/plain; charset=utf-8")
