"""Streamed answers as the AI SDK UI message stream that `useChat` reads, or as plain text: the one
encoder every function that streams an answer goes through.

    return await stream_response(events, protocol=body.protocol, message_id=body.messageId)

`events` are the chain's: `TextDelta`, `ToolCallStarted`, `ToolCallReady`, `StreamFinished`, then
`ChatCompleted` or `StreamFailed`. An answer that is more than a chat (rag's, with citations) ends
with a `MessageFinished` instead of `ChatCompleted`, carrying its own parts and metadata. An answer
of several model calls (tools the server runs) adds `ToolOutput` after a call it ran and `NextStep`
between two calls.

The UI message stream is SSE (`data: {json}` events, ending with `data: [DONE]`) with the header
`x-vercel-ai-ui-message-stream: v1`. Each chunk carries only keys the AI SDK v5 schema allows
(several client versions reject any other key):

    start{messageId} start-step text-start{id} text-delta{id,delta} text-end{id}
    tool-input-start{toolCallId,toolName} tool-input-available{toolCallId,toolName,input}
    tool-output-available{toolCallId,output} tool-output-error{toolCallId,errorText}
    source-url{sourceId,url,title?} source-document{sourceId,mediaType,title,filename?}
    finish-step finish{messageMetadata} | error{errorText}

Parts can also be added just before `finish` with `before_finish`:

    ui_message_response(events, before_finish=lambda: [source_url_part("s1", url, title)])
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lib import errors
from lib.gateway.chain import ChatCompleted, StreamFailed
from lib.providers.types import StreamFinished, TextDelta, ToolCallReady, ToolCallStarted
from lib.web import StreamingResponse, sse_response

UI_STREAM_HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
# The AI SDK's finish reasons (`finish.messageMetadata.finishReason`) for ours.
_UI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool-calls",
              "content_filter": "content-filter", "error": "error", "other": "other"}

# the plain text protocol's headers; sse_response sets the same ones for the UI message stream
_NO_BUFFERING = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}

ExtraParts = Callable[[], Iterable[dict[str, Any]] | Awaitable[Iterable[dict[str, Any]]]]


@dataclass
class MessageFinished:
    """The last event of an answer that says more than the chat did (citations, a conversation):
    `parts` go out just before `finish`, and `metadata` joins `finishReason` in its
    `messageMetadata`. `finish_reason` is in our words (`lib.providers.types`)."""

    finish_reason: str
    metadata: dict[str, Any]
    parts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ToolOutput:
    """A tool call the server ran, with its result (`output`, any JSON) or why it failed (`error`):
    `tool-output-available` or `tool-output-error`, which useChat shows on the call's part."""

    call_id: str
    output: Any = None
    error: str | None = None


@dataclass
class NextStep:
    """The answer goes on with another model call: `finish-step`, then `start-step`."""


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


def ui_finish_reason(finish_reason: str) -> str:
    return _UI_FINISH.get(finish_reason, "other")


def finish_metadata(result: Any) -> dict[str, Any]:
    """What the client gets in `finish.messageMetadata`: usage, cost and who answered."""
    r = result.response
    return {"finishReason": ui_finish_reason(r.finish_reason), "model": result.model,
            "provider": result.provider, "usage": r.usage.as_dict(), "costUsd": result.cost_usd,
            "latencyMs": round(result.latency_ms, 1), "cached": result.cached}


def _finish(event: ChatCompleted | MessageFinished) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The parts that go just before `finish`, and `finish.messageMetadata`."""
    if isinstance(event, MessageFinished):
        return list(event.parts), {"finishReason": ui_finish_reason(event.finish_reason), **event.metadata}
    return [], finish_metadata(event.result)


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

    try:
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
                yield {"type": "tool-input-available", "toolCallId": event.call.id,
                       "toolName": event.call.name, "input": event.call.parsed_arguments()}
            elif isinstance(event, StreamFinished):
                for chunk in end_text():
                    yield chunk
            elif isinstance(event, ToolOutput):
                for chunk in end_text():
                    yield chunk
                if event.error is not None:
                    yield {"type": "tool-output-error", "toolCallId": event.call_id, "errorText": event.error}
                else:
                    yield {"type": "tool-output-available", "toolCallId": event.call_id, "output": event.output}
            elif isinstance(event, NextStep):
                for chunk in end_text():
                    yield chunk
                yield {"type": "finish-step"}
                yield {"type": "start-step"}
            elif isinstance(event, StreamFailed):
                for chunk in end_text():
                    yield chunk
                yield {"type": "error", "errorText": event.message}
                yield "[DONE]"
                return
            elif isinstance(event, ChatCompleted | MessageFinished):
                for chunk in end_text():
                    yield chunk
                extra, metadata = _finish(event)
                if before_finish is not None:
                    more = before_finish()
                    if hasattr(more, "__await__"):
                        more = await more
                    extra += more
                for part in extra:
                    yield part
                yield {"type": "finish-step"}
                yield {"type": "finish", "messageMetadata": metadata}
    except errors.ApiError as exc:  # after the first chunk the status is sent: say it in the stream
        for chunk in end_text():
            yield chunk
        yield {"type": "error", "errorText": exc.message}
    yield "[DONE]"


def ui_message_response(events: AsyncIterator[Any], *, message_id: str | None = None,
                        before_finish: ExtraParts | None = None,
                        headers: dict[str, str] | None = None) -> StreamingResponse:
    """The UI message stream as an SSE response `useChat` reads directly."""
    return sse_response(ui_message_chunks(events, message_id=message_id, before_finish=before_finish),
                        {**UI_STREAM_HEADERS, **(headers or {})})


async def text_chunks(events: AsyncIterator[Any]) -> AsyncIterator[str]:
    """Only the text, as it comes (the AI SDK's `streamProtocol: 'text'`). A failure mid-stream ends
    the text early; it is recorded in the ledger and the log, as there is no way to say it here."""
    async for event in events:
        if isinstance(event, TextDelta) and event.text:
            yield event.text


def text_response(events: AsyncIterator[Any], headers: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(text_chunks(events), 200, {**_NO_BUFFERING, **(headers or {})},
                             "text/plain; charset=utf-8")


async def started(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The same events, with the first one already produced: whatever refuses or fails before it
    (a budget, a rate limit, every model down) is raised here, while the answer can still be a
    JSON error with its status. Closing the result closes `events`, so a client that goes away
    stops the provider stream too."""
    first = await anext(events)

    async def chained() -> AsyncIterator[Any]:
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()

    return chained()


async def stream_response(events: AsyncIterator[Any], *, protocol: str = "ui", message_id: str | None = None,
                          headers: dict[str, str] | None = None) -> StreamingResponse:
    """A streamed answer, once its first event is there (see `started`): plain text with
    `protocol="text"`, else the UI message stream. `message_id` is `useChat`'s `messageId`."""
    events = await started(events)
    if protocol == "text":
        return text_response(events, headers)
    return ui_message_response(events, message_id=message_id, headers=headers)
