"""What `POST /api/ai_execute` answers: the JSON body, and `finish.messageMetadata` of its stream.

Documentation models (see lib/shapes.py): the handler returns plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Any, Literal

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


class ExecuteResponse(Shape):
    """The JSON answer (`stream` false, the default for anything but useChat)."""

    id: str = Field(description="the request id, also in the x-request-id header")
    text: str
    message: AssistantMessage
    finish_reason: FinishReason
    usage: Usage
    cost_usd: float | None = Field(description="null when the model has no known price")
    provider: str
    model: str = Field(description="provider/model of the chain that answered")
    served_model: str = Field(description="what the provider says it ran")
    latency_ms: float
    cached: bool
    attempts: list[Attempt]
    json_: Any = Field(None, alias="json", description="the answer parsed, with a JSON response_format "
                       "(null when the model broke the format); absent otherwise")
    metadata: dict[str, Any] | None = Field(description="the request's metadata, echoed")


UIFinishReason = Literal["stop", "length", "tool-calls", "content-filter", "error", "other"]


class ChatMessageMetadata(Shape):
    """`finish.messageMetadata` of an ai_execute UI message stream (`message.metadata` in useChat)."""

    finishReason: UIFinishReason  # noqa: N815 - the AI SDK's spelling
    model: str
    provider: str
    usage: Usage
    costUsd: float | None  # noqa: N815
    latencyMs: float  # noqa: N815
    cached: bool
