"""What `/api/ai_execute` answers: the JSON of a POST (the answer, each step, the context kept, the
stored chat), `finish.messageMetadata` of its stream, and a caller's stored chats (GET, DELETE).

Documentation models (see lib/shapes.py): the handlers return plain dicts, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lib.gateway.response import AssistantMessage, Attempt, FinishReason, ToolCall, Usage
from lib.retrieval.response import Citation
from lib.shapes import Shape


class ToolResult(Shape):
    """A server tool's run (`server_tools`): its output, or the error the model was shown."""

    tool_call_id: str
    name: str
    output: Any = None
    error: str | None = None
    latency_ms: float


class Step(Shape):
    """One model call of the answer; a step ends when the model calls tools the server runs."""

    model: str
    provider: str
    finish_reason: FinishReason
    usage: Usage
    cost_usd: float | None
    latency_ms: float
    cached: bool
    tool_calls: list[ToolCall]
    tool_results: list[ToolResult] | None = None


class AddedMessage(Shape):
    """A message the answer added, in the OpenAI shape: send them back to go on after a client tool."""

    role: Literal["assistant", "tool"]
    content: str
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class SummaryCall(Shape):
    model: str
    calls: int
    usage: dict[str, int]
    cost_usd: float | None


class ContextReport(Shape):
    """What was left out of the model's view to fit its context window."""

    strategy: Literal["drop", "summarize"]
    dropped_turns: int
    summarized_turns: int
    input_tokens_estimate: int
    context_window: int
    window_known: bool = Field(description="false when the model's window is a guess")
    summary: SummaryCall | None = Field(None, description="the summary call(s) of this request, if any")
    notice: str | None = None


class UIMessage(Shape):
    """An AI SDK UIMessage, as useChat keeps it (`parts`: text, tool, source and step parts)."""

    id: str
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None


class ExecuteResponse(Shape):
    """The JSON answer (`stream` false, the default for anything but useChat): the last step's
    answer, with the totals of every step."""

    id: str = Field(description="the request id, also in the x-request-id header")
    text: str
    message: AssistantMessage
    finish_reason: FinishReason
    usage: Usage = Field(description="every step's, added up")
    cost_usd: float | None = Field(description="every step's and any summary's; null when a price is unknown")
    provider: str
    model: str = Field(description="provider/model of the chain that answered the last step")
    served_model: str = Field(description="what the provider says it ran")
    latency_ms: float
    cached: bool
    attempts: list[Attempt] = Field(description="every try of every step: retries, fallbacks, skips")
    steps: list[Step]
    messages: list[AddedMessage]
    context: ContextReport
    conversation_id: str | None = Field(description="the stored chat, when the answer was kept")
    message_id: str
    ui_message: UIMessage = Field(description="the answer as the assistant UIMessage useChat would hold")
    citations: list[Citation] | None = Field(None, description="with `server_tools`: the passages the answer cites")
    json_: Any = Field(None, alias="json", description="the answer parsed, with a JSON response_format "
                       "(null when the model broke the format); absent otherwise")
    metadata: dict[str, Any] | None = Field(description="the request's metadata, echoed")


class ChatMessageMetadata(Shape):
    """`finish.messageMetadata` of the UI message stream (`message.metadata` in useChat)."""

    finishReason: Literal["stop", "length", "tool-calls", "content-filter", "error", "other"]  # noqa: N815
    model: str
    provider: str
    usage: Usage
    costUsd: float | None  # noqa: N815
    latencyMs: float  # noqa: N815
    cached: bool
    steps: int
    context: ContextReport
    conversationId: str | None = None  # noqa: N815
    citations: list[Citation] | None = None


class ChatSummary(Shape):
    conversation_id: str
    title: str | None
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")
    turns: int


class ChatList(Shape):
    """`GET` without `conversation_id`: the caller's chats, the most recently active first."""

    namespace: str
    conversations: list[ChatSummary]
    limit: int
    offset: int


class ChatSummaryText(Shape):
    text: str
    turns: int = Field(description="how many of the oldest turns it covers")


class StoredChat(Shape):
    """`GET ?conversation_id=`: one chat as the UIMessages useChat starts from (`messages`)."""

    conversation_id: str
    namespace: str
    title: str | None
    messages: list[UIMessage]
    summary: ChatSummaryText | None
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")


class DeletedChat(Shape):
    conversation_id: str
    namespace: str
    deleted: Literal[True]
    turns: int
