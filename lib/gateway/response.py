"""The pieces of a model call's answer that every function reporting one shares: usage, tool calls,
the assistant message and the attempts (the whole of `/api/ai_execute`'s answer is in
lib/assistant/response.py).

Documentation models (see lib/shapes.py): the handler returns plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lib.shapes import Shape


class Usage(Shape):
    input_tokens: int = Field(description="the whole prompt, cached part included")
    output_tokens: int
    cached_tokens: int = Field(description="the part of the prompt read from the provider's prompt cache")
    total_tokens: int


class FunctionCall(Shape):
    name: str
    arguments: str = Field(description="JSON text, as the model wrote it")


class ToolCall(Shape):
    id: str
    type: Literal["function"]
    function: FunctionCall


class AssistantMessage(Shape):
    role: Literal["assistant"]
    content: str
    tool_calls: list[ToolCall] | None = None


class Attempt(Shape):
    """One try of one model: the retries and fallbacks that led to the answer."""

    model: str
    provider: str
    attempt: int
    status: Literal["ok", "error", "skipped", "cached"]
    latency_ms: float
    error_code: str | None = None
    http_status: int | None = None
    message: str | None = None


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]
