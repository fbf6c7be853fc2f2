"""The normalized chat request, response and stream events every provider adapter translates.

An adapter is a translator between these types and one wire format, nothing more:

    class Adapter(Protocol):
        async def complete(self, request: ChatRequest, target: Target) -> ChatResponse
        def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]

A provider's failure leaves it as `ProviderError` (lib/providers/exceptions.py), mapped from the SDK's
own exceptions at the seam by the adapter's `map_exceptions`, streams included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

# finish reasons, the same words as the OpenAI API, whatever the provider said
STOP, LENGTH, TOOL_CALLS, CONTENT_FILTER, ERROR, OTHER = (
    "stop", "length", "tool_calls", "content_filter", "error", "other")


@dataclass
class ToolCall:
    """A function call the model asked for; `arguments` is the JSON text it produced."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> Any:
        """The arguments as JSON, or the raw text when the model produced something else."""
        try:
            return json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return self.arguments

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Message:
    """One turn. `role` is system | user | assistant | tool; `tool_call_id` links a tool result."""

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None  # the tool's name, for a tool result


@dataclass
class Tool:
    """A function the model may call, described by a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass
class ChatRequest:
    """What to ask. `model` is the provider's own model name (no `provider/` prefix)."""

    model: str
    messages: list[Message]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None  # auto | none | required | {"name": ...}
    response_format: dict[str, Any] | None = None  # {"type": "json_object"} | {"type": "json_schema", ...}
    user: str | None = None


@dataclass
class Usage:
    """Tokens of one answer. `cached_tokens` is the part of `input_tokens` read from the prompt cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens, "total_tokens": self.total_tokens}


@dataclass
class ChatResponse:
    """The answer of one attempt, in our terms."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = STOP
    usage: Usage = field(default_factory=Usage)
    model: str = ""  # the model the provider says served the request


# --- stream events ------------------------------------------------------------------------------


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallStarted:
    """The model began a tool call; its arguments follow as they are generated."""

    id: str
    name: str


@dataclass
class ToolCallReady:
    """A tool call with its complete arguments."""

    call: ToolCall


@dataclass
class StreamFinished:
    finish_reason: str
    usage: Usage
    model: str = ""


StreamEvent = TextDelta | ToolCallStarted | ToolCallReady | StreamFinished


@dataclass(frozen=True)
class Target:
    """Where one attempt goes: the provider, the model, the key and base URL, the timeout."""

    provider: str
    model: str
    api_key: str
    base_url: str | None
    timeout_s: float
    byok: bool = False
    max_tokens_field: str = "max_tokens"  # OpenAI itself now wants max_completion_tokens
    usage_in_stream: bool = True  # ask for usage in the last stream chunk (stream_options)
    sends_user: bool = True  # pass `user` on to the provider


class Adapter(Protocol):
    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse: ...

    def stream(self, request: ChatRequest, target: Target) -> Any: ...
