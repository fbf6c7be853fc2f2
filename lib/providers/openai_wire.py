"""The OpenAI Chat Completions wire format, through the `openai` SDK: OpenAI itself, Google Gemini
and OpenRouter at their OpenAI-compatible URLs, and any compatible server (Ollama, vLLM, LM Studio).

Groq speaks the same format through its own SDK, so the translation functions here are shared.
Usage: `prompt_tokens` already includes the cached tokens, which is also how we count them.
Failures leave as `ProviderError`, through `map_exceptions` (the embeddings code uses it too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from lib.providers import client_for_target
from lib.providers.exceptions import ProviderError, from_sdk, mapping_exceptions
from lib.providers.types import (
    CONTENT_FILTER,
    LENGTH,
    OTHER,
    STOP,
    TOOL_CALLS,
    ChatRequest,
    ChatResponse,
    StreamEvent,
    StreamFinished,
    Target,
    TextDelta,
    ToolCall,
    ToolCallReady,
    ToolCallStarted,
    Usage,
)


def map_exceptions(provider: str) -> AbstractContextManager[None]:
    """Raise the `openai` SDK's exceptions as `ProviderError`. The SDK wraps its HTTP library's
    errors itself, in streams too, so its own classes are all there is to map."""
    return mapping_exceptions(provider, _translate)


def _translate(provider: str, exc: Exception) -> ProviderError | None:
    import openai  # loaded already: the call that failed went through it

    return from_sdk(provider, exc, openai)


FINISH_REASONS = {"stop": STOP, "length": LENGTH, "tool_calls": TOOL_CALLS, "function_call": TOOL_CALLS,
                  "content_filter": CONTENT_FILTER, "end_turn": STOP, "max_tokens": LENGTH}


def wire_messages(request: ChatRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for m in request.messages:
        if m.role == "tool":
            messages.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            messages.append({
                "role": "assistant", "content": m.content or None,
                "tool_calls": [{"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls],
            })
        else:
            messages.append({"role": m.role, "content": m.content})
    return messages


def wire_tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def wire_params(request: ChatRequest, target: Target, *, stream: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"model": target.model, "messages": wire_messages(request)}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params[target.max_tokens_field] = request.max_tokens
    if request.stop:
        params["stop"] = request.stop
    if request.tools:
        params["tools"] = [{"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": t.parameters}} for t in request.tools]
    if request.tool_choice is not None:
        params["tool_choice"] = wire_tool_choice(request.tool_choice)
    if request.response_format is not None:
        params["response_format"] = request.response_format
    if request.user and target.sends_user:
        params["user"] = request.user
    if stream:
        params["stream"] = True
        if target.usage_in_stream:
            params["stream_options"] = {"include_usage": True}
    return params


def read_usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0,
                 cached_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0)


def read_completion(completion: Any) -> ChatResponse:
    choice = completion.choices[0]
    message = choice.message
    calls = [ToolCall(c.id, c.function.name, c.function.arguments or "{}") for c in (message.tool_calls or [])]
    return ChatResponse(text=message.content or "", tool_calls=calls,
                        finish_reason=FINISH_REASONS.get(choice.finish_reason or "", OTHER),
                        usage=read_usage(completion.usage), model=completion.model or "")


async def read_chunks(chunks: AsyncIterator[Any]) -> AsyncIterator[StreamEvent]:
    """Chat completion chunks -> our events; tool calls are assembled from their argument pieces."""
    calls: dict[int, ToolCall] = {}
    finish: str | None = None
    usage, model = Usage(), ""
    async for chunk in chunks:
        model = chunk.model or model
        if getattr(chunk, "usage", None):
            usage = read_usage(chunk.usage)
        for choice in chunk.choices or []:
            delta = choice.delta
            if delta is not None and delta.content:
                yield TextDelta(delta.content)
            for piece in (delta.tool_calls or []) if delta is not None else []:
                call = calls.get(piece.index)
                if call is None:
                    name = piece.function.name if piece.function else ""
                    call = calls[piece.index] = ToolCall(piece.id or f"call_{piece.index}", name or "", "")
                    yield ToolCallStarted(call.id, call.name)
                if piece.function and piece.function.arguments:
                    call.arguments += piece.function.arguments
            if choice.finish_reason:
                finish = FINISH_REASONS.get(choice.finish_reason, OTHER)
    if finish is None:  # a clean end without a finish reason is a cut-off answer, not a complete one
        raise ProviderError("connection", "the provider's stream ended without a finish reason")
    for call in calls.values():
        call.arguments = call.arguments or "{}"
        yield ToolCallReady(call)
    yield StreamFinished(finish, usage, model)


class OpenAIWire:
    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        client = client_for_target(target)
        with map_exceptions(target.provider):
            completion = await client.chat.completions.create(**wire_params(request, target, stream=False))
        return read_completion(completion)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        client = client_for_target(target)
        with map_exceptions(target.provider):
            chunks = await client.chat.completions.create(**wire_params(request, target, stream=True))
            try:
                async for event in read_chunks(chunks):
                    yield event
            finally:
                await chunks.close()


ADAPTER = OpenAIWire()

