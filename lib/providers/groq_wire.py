"""Groq, through its own `groq` SDK. The wire format is OpenAI's Chat Completions (at
`/openai/v1/chat/completions`), so the translation is shared with `openai_wire`; streamed usage
may also arrive in Groq's own `x_groq.usage` field of the last chunk. Failures leave as
`ProviderError`, through `map_exceptions`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from lib.providers import sdk_client
from lib.providers.exceptions import ProviderError, from_sdk, mapping_exceptions
from lib.providers.openai_wire import read_chunks, read_completion, wire_params
from lib.providers.types import ChatRequest, ChatResponse, StreamEvent, Target


def groq_client(target: Target) -> Any:
    return sdk_client(target, "groq", "AsyncGroq")


def map_exceptions(provider: str) -> AbstractContextManager[None]:
    """Raise the `groq` SDK's exceptions as `ProviderError`, and those of its HTTP library, `httpx`,
    which the SDK lets through unwrapped while a stream is read."""
    return mapping_exceptions(provider, _translate)


def _translate(provider: str, exc: Exception) -> ProviderError | None:
    import groq  # loaded already: the call that failed went through it
    import httpx

    return from_sdk(provider, exc, groq, httpx)


async def _with_groq_usage(chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for chunk in chunks:
        extra = getattr(chunk, "x_groq", None)
        if extra is not None and getattr(extra, "usage", None) and not getattr(chunk, "usage", None):
            chunk.usage = extra.usage
        yield chunk


class GroqWire:
    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        with map_exceptions(target.provider):
            completion = await groq_client(target).chat.completions.create(
                **wire_params(request, target, stream=False))
        return read_completion(completion)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        with map_exceptions(target.provider):
            chunks = await groq_client(target).chat.completions.create(
                **wire_params(request, target, stream=True))
            try:
                async for event in read_chunks(_with_groq_usage(chunks)):
                    yield event
            finally:
                await chunks.close()


ADAPTER = GroqWire()
