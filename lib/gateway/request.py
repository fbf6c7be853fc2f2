"""The body of `POST /api/ai_execute` and its translation into a `ChatCall`.

Messages come in two shapes: OpenAI-style (`role`, `content`, `tool_calls`, `tool_call_id`) and
the AI SDK's UIMessages that `useChat` posts (`id`, `role`, `parts`). Both become our `Message`s.
`useChat` also sends `id`, `trigger` and `messageId` at the top level; they are accepted by name
(every other unknown field is refused).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lib import errors
from lib.config import Settings
from lib.gateway.chain import CallContext, ChatCall
from lib.logs import redact_for_this_request
from lib.providers import PROVIDERS, resolve_model
from lib.providers.types import ChatRequest, Message, Tool, ToolCall
from lib.web.fields import ResourceName, TemplateRef

if TYPE_CHECKING:
    from lib.web import Request

MAX_MESSAGES = 500


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class FunctionIn(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolIn(BaseModel):
    """`{"type": "function", "function": {...}}` (OpenAI) or the flat `{"name", "description", "parameters"}`."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    type: Literal["function"] = "function"
    function: FunctionIn | None = None
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None

    @model_validator(mode="after")
    def one_shape(self) -> ToolIn:
        if self.function is None:
            if not self.name:
                raise ValueError("a tool needs `function` (OpenAI style) or `name`")
            self.function = FunctionIn(name=self.name, description=self.description or "",
                                       parameters=self.parameters or {"type": "object", "properties": {}})
        return self


class FunctionCallIn(Strict):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ContentPartIn(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    type: str
    text: str | None = None


class MessageIn(Strict):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[ContentPartIn] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    # the AI SDK's UIMessage
    id: str | None = None
    parts: list[dict[str, Any]] | None = None
    metadata: Any = None

    @model_validator(mode="after")
    def has_something(self) -> MessageIn:
        if self.content is None and self.parts is None and not self.tool_calls:
            raise ValueError("a message needs `content` or `parts`")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs `tool_call_id`")
        return self


class NamedToolChoice(Strict):
    type: Literal["function"] = "function"
    function: dict[str, str] | None = None
    name: str | None = None


class ResponseFormatIn(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def schema_given(self) -> ResponseFormatIn:
        if self.type == "json_schema" and not (self.json_schema and isinstance(self.json_schema.get("schema"), dict)):
            raise ValueError('json_schema needs {"name": ..., "schema": {...}}')
        return self


class ExecuteRequest(Strict):
    """What `POST /api/ai_execute` takes."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"prompt": "Name three rivers", "model": "local/echo"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
         "model": "openai/gpt-4o-mini", "fallbacks": ["anthropic/claude-haiku-4-5"], "stream": True},
    ]})

    prompt: str | None = Field(default=None, max_length=1_000_000)
    messages: list[MessageIn] | None = Field(default=None, max_length=MAX_MESSAGES)
    system: str | None = None
    model: str | None = Field(default=None, max_length=200)
    fallbacks: list[str] = Field(default_factory=list, max_length=5)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: str | list[str] | None = None
    tools: list[ToolIn] | None = Field(default=None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    response_format: ResponseFormatIn | None = None
    user: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: dict[str, Any] | None = None
    stream: bool | None = None  # None: stream when useChat sent it (it sends `trigger`), else JSON
    protocol: Literal["ui", "text"] = "ui"
    cache: bool | None = None
    # a stored prompt, and an experiment that picks the prompt version or model (lib/experiments)
    template: TemplateRef | None = None
    experiment: ResourceName | None = None
    # sent by the AI SDK's useChat alongside `messages`
    id: str | None = None
    trigger: Literal["submit-message", "regenerate-message"] | None = None
    messageId: str | None = None  # noqa: N815 - the AI SDK's name

    @property
    def streams(self) -> bool:
        return self.stream if self.stream is not None else self.trigger is not None

    @field_validator("stop")
    @classmethod
    def at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @model_validator(mode="after")
    def prompt_or_messages(self) -> ExecuteRequest:
        if self.prompt is None and self.messages is None and self.template is None and self.experiment is None:
            raise ValueError("send `prompt` (a string), `messages` (a list) or `template`")
        if self.prompt is not None and self.messages is not None:
            raise ValueError("send `prompt` or `messages`, not both")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("`prompt` is empty")
        if self.messages is not None and not self.messages:
            raise ValueError("`messages` is empty")
        if self.tool_choice is not None and self.tool_choice != "none" and not self.tools and not self.template:
            raise ValueError("`tool_choice` needs `tools`")
        return self


# --- translation -----------------------------------------------------------------------------------


def _text_of(content: str | list[ContentPartIn] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for i, part in enumerate(content):
        if part.type != "text":
            raise errors.field_error(f"{where}.content.{i}.type",
                                     f"{part.type!r} parts are not supported; send text")
        texts.append(part.text or "")
    return "".join(texts)


def _arguments(value: str | dict[str, Any]) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def ui_parts_to_messages(role: str, parts: list[dict[str, Any]], where: str) -> list[Message]:
    """A UIMessage's parts -> messages: text, and tool calls with their results in order (a stored
    chat's turns are read back through here too)."""
    out: list[Message] = []
    text: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []

    def flush() -> None:
        if text or calls:
            out.append(Message(role, "".join(text), list(calls)))
        out.extend(results)
        text.clear()
        calls.clear()
        results.clear()

    for i, part in enumerate(parts):
        kind = part.get("type")
        if not isinstance(kind, str):
            raise errors.field_error(f"{where}.parts.{i}.type", "every part needs a string `type`")
        if kind == "text":
            if calls:  # text after tool results belongs to the next step
                flush()
            text.append(str(part.get("text", "")))
        elif role == "assistant" and (kind.startswith("tool-") or kind == "dynamic-tool"):
            state = part.get("state")
            if state not in ("output-available", "output-error"):
                continue  # a call with no result yet cannot be sent back to a provider
            name = part.get("toolName") if kind == "dynamic-tool" else kind.removeprefix("tool-")
            call_id = str(part.get("toolCallId") or f"call_{i}")
            calls.append(ToolCall(call_id, str(name), json.dumps(part.get("input", {}))))
            output = part.get("output") if state == "output-available" else {"error": part.get("errorText")}
            results.append(Message("tool", output if isinstance(output, str) else json.dumps(output),
                                   tool_call_id=call_id, name=str(name)))
        elif kind in ("step-start", "reasoning") or kind.startswith(("source-", "data-")):
            continue  # display-only parts: not part of what the model is asked
        else:
            raise errors.field_error(f"{where}.parts.{i}.type", f"{kind!r} parts are not supported; send text")
    flush()
    return out


def to_messages(body: ExecuteRequest) -> tuple[list[Message], str | None]:
    """Our messages, and the system prompt (the `system` field plus any system messages)."""
    if body.prompt is not None:
        return [Message("user", body.prompt)], body.system
    system = [body.system] if body.system else []
    messages: list[Message] = []
    for i, m in enumerate(body.messages or []):
        where = f"messages.{i}"
        if m.parts is not None:
            converted = ui_parts_to_messages(m.role, m.parts, where)
        else:
            calls = [ToolCall(c.id, c.function.name, _arguments(c.function.arguments)) for c in m.tool_calls or []]
            converted = [Message(m.role, _text_of(m.content, where), calls, m.tool_call_id, m.name)]
        for message in converted:
            if message.role == "user" and not message.content.strip():
                raise errors.field_error(where, "a user message needs some text")
            if message.role == "system":
                system.append(message.content)
            else:
                messages.append(message)
    if not messages:
        raise errors.field_error("messages", "there is no user message to answer")
    return messages, "\n\n".join(system) or None


def _tool_choice(choice: Any) -> str | dict[str, Any] | None:
    if isinstance(choice, NamedToolChoice):
        name = choice.name or (choice.function or {}).get("name")
        if not name:
            raise errors.field_error("tool_choice", "name the function: {\"type\": \"function\", "
                                     "\"function\": {\"name\": ...}}")
        return {"name": name}
    return choice


def to_chat_request(body: ExecuteRequest, user_id: str | None = None) -> ChatRequest:
    """The chat the providers see; `user_id` is the verified end user (see `Request.user_id`)."""
    messages, system = to_messages(body)
    tools = [Tool(t.function.name, t.function.description, t.function.parameters)
             for t in body.tools or [] if t.function is not None]
    names = {t.name for t in tools}
    choice = _tool_choice(body.tool_choice)
    if isinstance(choice, dict) and choice["name"] not in names:
        raise errors.field_error("tool_choice", f"{choice['name']!r} is not one of the tools")
    fmt = body.response_format.model_dump(exclude_none=True) if body.response_format else None
    if fmt and fmt["type"] == "text":
        fmt = None
    return ChatRequest(
        model="", messages=messages, system=system, temperature=body.temperature, max_tokens=body.max_tokens,
        stop=[body.stop] if isinstance(body.stop, str) else list(body.stop or []), tools=tools,
        tool_choice=choice, response_format=fmt, user=user_id)


def to_call(body: ExecuteRequest, settings: Settings, user_id: str | None = None) -> ChatCall:
    """The models to try (the named one or the default, then the fallbacks) and the chat."""
    models = [body.model or default_chat_model(settings), *body.fallbacks]
    chat = to_chat_request(body, user_id)
    for i, name in enumerate(models):
        spec, model = resolve_model(name, "model" if i == 0 else f"fallbacks.{i - 1}")
        if chat.tools and not spec.supports_tools:
            raise errors.field_error("tools", f"{name} does not take tools")
        models[i] = f"{spec.name}/{model}"  # one spelling for the cache, the ledger and the answer
    return ChatCall(models, chat, body.cache)


def default_chat_model(settings: Settings) -> str:
    """DEFAULT_MODEL; without it, the offline `local/echo` while no provider key is set. Once a key
    is set we do not pick a paid model for the caller: the 422 says what to name."""
    if settings.default_model:
        return settings.default_model
    configured = [f"{spec.name}/{spec.example_model}" for spec in PROVIDERS.values()
                  if spec.needs_key and spec.key_setting and getattr(settings, spec.key_setting)]
    if not configured:
        return "local/echo"
    raise errors.field_error("model", f"name a model, e.g. {' or '.join(configured)}, or set DEFAULT_MODEL "
                             "(local/echo is the offline echo)")


def call_context(request: Request, body: ExecuteRequest) -> CallContext:
    """Who is asking, and any provider keys they brought (only when ALLOW_BYOK is on)."""
    keys = {spec.name: request.header(spec.byok_header) for spec in PROVIDERS.values()
            if spec.byok_header and request.header(spec.byok_header)}
    redact_for_this_request(*keys.values())  # whatever their format, even if a provider echoes them
    if keys and not request.settings.allow_byok:
        raise errors.Forbidden("provider keys in request headers are not accepted on this deployment "
                               "(ALLOW_BYOK is off)", code="byok_disabled")
    return CallContext(request.settings, request.request_id, request.user_id, request.caller, keys)


def json_output(body: ExecuteRequest, text: str) -> dict[str, Any]:
    """With a JSON response format, the answer parsed as `json` (null when the model broke the format)."""
    if body.response_format is None or body.response_format.type == "text":
        return {}
    try:
        return {"json": json.loads(text)}
    except json.JSONDecodeError:
        return {"json": None}
