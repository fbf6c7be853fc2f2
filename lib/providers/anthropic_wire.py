"""Anthropic's Messages API, through the `anthropic` SDK.

What differs from OpenAI: the system prompt is a parameter, not a message; `max_tokens` is
required; tool calls are `tool_use` content blocks and tool results are `tool_result` blocks in a
user turn; stop reasons have other names; and cached prompt tokens are reported in addition to
`input_tokens` (we add them, so `input_tokens` means the whole prompt everywhere). The Messages
API (as of SDK 2.x) takes no sampling temperature, so `temperature` is not sent.
Failures leave as `ProviderError`, through `map_exceptions`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

from lib.providers import sdk_client
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

DEFAULT_MAX_TOKENS = 4096  # Anthropic refuses a request without max_tokens
STOP_REASONS = {"end_turn": STOP, "stop_sequence": STOP, "max_tokens": LENGTH, "tool_use": TOOL_CALLS,
                "refusal": CONTENT_FILTER, "pause_turn": OTHER, "model_context_window_exceeded": LENGTH}
JSON_ONLY = "Answer with one JSON object and nothing else."


def anthropic_client(target: Target) -> Any:
    return sdk_client(target, "anthropic", "AsyncAnthropic")


def map_exceptions(provider: str) -> AbstractContextManager[None]:
    """Raise the `anthropic` SDK's exceptions as `ProviderError`, and those of its HTTP library,
    `httpx2`, which the SDK lets through unwrapped while a stream is read."""
    return mapping_exceptions(provider, _translate)


def _translate(provider: str, exc: Exception) -> ProviderError | None:
    import anthropic  # loaded already: the call that failed went through it
    import httpx2

    return from_sdk(provider, exc, anthropic, httpx2)


def wire_messages(request: ChatRequest) -> tuple[str, list[dict[str, Any]]]:
    """(system text, messages) with tool calls and results as content blocks, same-role turns merged."""
    system = [request.system] if request.system else []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for m in request.messages:
        if m.role == "system":
            system.append(m.content)
        elif m.role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}])
        elif m.role == "assistant":
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _as_object(c.parsed_arguments())}
                       for c in m.tool_calls]
            add("assistant", blocks)
        else:
            add("user", [{"type": "text", "text": m.content}])
    return "\n\n".join(system), turns


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def wire_tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice["name"]}
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}[choice]


def wire_params(request: ChatRequest, target: Target) -> dict[str, Any]:
    system, messages = wire_messages(request)
    params: dict[str, Any] = {"model": target.model, "messages": messages,
                              "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS}
    fmt = request.response_format or {}
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema") or fmt.get("schema") or {"type": "object"}
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif fmt.get("type") == "json_object":
        system = f"{system}\n\n{JSON_ONLY}".strip()
    if system:
        params["system"] = system
    if request.stop:
        params["stop_sequences"] = request.stop
    if request.tools:
        params["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                           for t in request.tools]
    if request.tool_choice is not None:
        params["tool_choice"] = wire_tool_choice(request.tool_choice)
    if request.user:
        params["metadata"] = {"user_id": request.user}
    return params


def read_usage(usage: Any, previous: Usage | None = None) -> Usage:
    if usage is None:
        return previous or Usage()
    read = getattr(usage, "cache_read_input_tokens", None) or 0
    created = getattr(usage, "cache_creation_input_tokens", None) or 0
    fresh = getattr(usage, "input_tokens", None)
    base = previous or Usage()
    return Usage(
        input_tokens=(fresh + read + created) if fresh is not None else base.input_tokens,
        output_tokens=getattr(usage, "output_tokens", None) or base.output_tokens,
        cached_tokens=read if fresh is not None else base.cached_tokens,
    )


def read_message(message: Any) -> ChatResponse:
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [ToolCall(b.id, b.name, json.dumps(b.input)) for b in message.content if b.type == "tool_use"]
    return ChatResponse(text=text, tool_calls=calls, finish_reason=STOP_REASONS.get(message.stop_reason, OTHER),
                        usage=read_usage(message.usage), model=message.model or "")


async def read_events(events: AsyncIterator[Any]) -> AsyncIterator[StreamEvent]:
    """Messages stream events -> our events; a tool call is ready when its content block stops."""
    calls: dict[int, ToolCall] = {}
    usage, finish, model, stopped = Usage(), STOP, "", False
    async for event in events:
        kind = event.type
        if kind == "message_start":
            model = event.message.model or model
            usage = read_usage(event.message.usage)
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            calls[event.index] = ToolCall(block.id, block.name, "")
            yield ToolCallStarted(block.id, block.name)
        elif kind == "content_block_delta":
            if event.delta.type == "text_delta" and event.delta.text:
                yield TextDelta(event.delta.text)
            elif event.delta.type == "input_json_delta" and event.index in calls:
                calls[event.index].arguments += event.delta.partial_json
        elif kind == "content_block_stop" and event.index in calls:
            call = calls.pop(event.index)
            call.arguments = call.arguments or "{}"
            yield ToolCallReady(call)
        elif kind == "message_delta":
            finish = STOP_REASONS.get(event.delta.stop_reason or "", finish)
            usage = read_usage(event.usage, usage)
        elif kind == "message_stop":
            stopped = True
    if not stopped:  # a clean end before message_stop is a cut-off answer, not a complete one
        raise ProviderError("connection", "the provider's stream ended before message_stop")
    yield StreamFinished(finish, usage, model)


class AnthropicWire:
    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        with map_exceptions(target.provider):
            message = await anthropic_client(target).messages.create(**wire_params(request, target))
        return read_message(message)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        with map_exceptions(target.provider):
            events = await anthropic_client(target).messages.create(**wire_params(request, target),
                                                                    stream=True)
            try:
                async for event in read_events(events):
                    yield event
            finally:
                await events.close()


ADAPTER = AnthropicWire()
