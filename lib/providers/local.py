"""The offline `local/...` provider: answers with no key and no network, and says so.

`local/echo` is not a language model. It repeats the last user message inside a label that
names it as the offline echo, so nobody mistakes its output for a model's answer. It exists so
that the whole path (streaming, ledger, cache, useChat) runs on a laptop with no keys.
It calls nothing that can fail the way a provider does, so it has no `map_exceptions`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from lib.providers.types import (
    STOP,
    ChatRequest,
    ChatResponse,
    StreamEvent,
    StreamFinished,
    Target,
    TextDelta,
    Usage,
)
from lib.tokens import count_tokens

LABEL = "[offline local/echo: no language model was called]"


def answer_text(request: ChatRequest) -> str:
    last = next((m.content for m in reversed(request.messages) if m.role in ("user", "tool")), "")
    if (request.response_format or {}).get("type") in ("json_object", "json_schema"):
        return json.dumps({"offline": True, "model": "local/echo", "echo": last})
    return f"{LABEL} You said: {last}" if last else f"{LABEL} (no user message)"


def _usage(request: ChatRequest, text: str) -> Usage:
    prompt = (request.system or "") + "\n".join(m.content for m in request.messages)
    return Usage(input_tokens=count_tokens(prompt), output_tokens=count_tokens(text))


class LocalEcho:
    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        text = answer_text(request)
        if request.max_tokens is not None:
            text = " ".join(text.split(" ")[: max(1, request.max_tokens)])
        return ChatResponse(text=text, finish_reason=STOP, usage=_usage(request, text), model="local/echo")

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request, target)
        pieces = response.text.split(" ")
        for i, piece in enumerate(pieces):
            yield TextDelta(piece + (" " if i < len(pieces) - 1 else ""))
        yield StreamFinished(response.finish_reason, response.usage, response.model)


ADAPTER = LocalEcho()
