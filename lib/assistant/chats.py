"""Stored chats: what a request sends, reconciled with the turns Postgres holds; and the turns read
back as AI SDK UI messages (`[{id, role, parts}]`, what useChat takes as its initial `messages`).

A turn is one UI message. What the client sends is matched to the stored turns by message id:

- messages the chat already holds are skipped (useChat sends the whole list every time), or
  rewritten when they changed (useChat adds a client-side tool's output to its call);
- messages after the last one the chat holds are appended (the client may send only the newest);
- stored turns after the last one the client sent are gone from its view (it regenerated an
  answer or edited a question), so they are deleted.

OpenAI-style messages have no ids: they are all new, so with a stored chat a client sends only its
new messages; a `tool` message fills in the result of its call in the stored assistant turn.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.assistant.context import Entry
from lib.gateway.request import MessageIn, ui_parts_to_messages

if TYPE_CHECKING:
    from lib.retrieval.conversations import StoredTurn

TITLE_CHARS = 80
# keys a client adds to parts it renders, which say nothing about the turn itself
_DISPLAY_KEYS = ("providerMetadata", "callProviderMetadata")


def new_message_id() -> str:
    return f"msg-{uuid.uuid4().hex}"


@dataclass
class UIMessage:
    """An AI SDK UIMessage: `{id, role, parts, metadata?}`."""

    id: str | None
    role: str  # user | assistant
    parts: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    id_given: bool = True  # False: an OpenAI-style message, whose id we made up

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "role": self.role, "parts": self.parts}
        if self.metadata:
            data["metadata"] = self.metadata
        return data

    @property
    def text(self) -> str:
        return "".join(p.get("text", "") for p in self.parts if p.get("type") == "text"
                       and isinstance(p.get("text"), str))


def turn_message_id(turn: StoredTurn) -> str:
    return turn.message_id or f"turn-{turn.id}"


def ui_message_of(turn: StoredTurn) -> UIMessage:
    """A stored turn as a UI message; a rag turn's text and citations become text and source parts."""
    if turn.parts is not None:
        return UIMessage(turn_message_id(turn), turn.role, turn.parts, turn.metadata)
    from lib.retrieval.http import source_part

    parts: list[dict[str, Any]] = [{"type": "text", "text": turn.content}]
    parts += [source_part(c) for c in turn.citations if c.get("document_id") is not None]
    return UIMessage(turn_message_id(turn), turn.role, parts)


def entry_of(message: UIMessage, turn_id: int | None = None) -> Entry:
    """What the model is sent for one UI message."""
    return Entry(ui_parts_to_messages(message.role, message.parts, f"conversation turn {message.id}"), turn_id)


# --- what the client sent, as UI messages ---------------------------------------------------------


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return text


def _text_part(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}] if text else []


def _text(content: Any) -> str:
    """An OpenAI-style message's text (the model call has already refused parts that are not text)."""
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text or "" for part in content)


def incoming_messages(messages: list[MessageIn], previous: UIMessage | None) -> list[UIMessage]:
    """The request's messages as UI messages. `previous` is the chat's last stored turn, whose tool
    calls a `tool` message may answer (it comes back here with the result filled in, under its id)."""
    out: list[UIMessage] = []
    for i, m in enumerate(messages):
        where = f"messages.{i}"
        if m.role == "system":
            continue  # the system prompt is the request's, never part of the stored chat
        if m.parts is not None:
            out.append(UIMessage(m.id, m.role, list(m.parts), m.metadata if isinstance(m.metadata, dict) else None))
        elif m.role == "tool":
            _answer_call(m, where, out, previous)
        else:
            parts = _text_part(_text(m.content))
            for call in m.tool_calls or []:
                arguments = call.function.arguments
                parts.append({"type": f"tool-{call.function.name}", "toolCallId": call.id, "state": "input-available",
                              "input": _json_value(arguments) if isinstance(arguments, str) else arguments})
            out.append(UIMessage(m.id or new_message_id(), m.role, parts, id_given=m.id is not None))
    return out


def _answer_call(m: MessageIn, where: str, out: list[UIMessage], previous: UIMessage | None) -> None:
    """Put a tool result in the part of the call it answers, in the latest assistant message."""
    candidates = [message for message in reversed(out) if message.role == "assistant"][:1]
    if not candidates and previous is not None and previous.role == "assistant":
        candidates = [UIMessage(previous.id, previous.role, [dict(p) for p in previous.parts], previous.metadata)]
        out.append(candidates[0])
    for message in candidates:
        for part in message.parts:
            if part.get("toolCallId") == m.tool_call_id and str(part.get("type", "")).startswith("tool-"):
                part.update(state="output-available", output=_json_value(m.content if isinstance(m.content, str)
                                                                         else json.dumps(m.content)))
                part.pop("errorText", None)
                return
    raise errors.field_error(f"{where}.tool_call_id",
                             f"{m.tool_call_id!r} does not answer a tool call of the previous assistant message")


# --- reconciling them with the stored chat ----------------------------------------------------------


def _comparable(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    same = []
    for part in parts:
        kept = {k: v for k, v in part.items() if k not in _DISPLAY_KEYS}
        if part.get("type") in ("text", "reasoning"):
            kept.pop("state", None)  # "done" once useChat has streamed it
        same.append(kept)
    return same


@dataclass
class ChatChanges:
    new: list[UIMessage] = field(default_factory=list)
    replace: dict[int, UIMessage] = field(default_factory=dict)  # stored turn id -> its new content
    delete_after: int | None = None

    def __bool__(self) -> bool:
        return bool(self.new or self.replace or self.delete_after is not None)


def reconcile(stored: list[StoredTurn], incoming: list[UIMessage]) -> ChatChanges:
    """What to store so that the chat reads as the client sees it (see the module docstring)."""
    known = {turn_message_id(t): t for t in stored}
    changes = ChatChanges()
    last_known: StoredTurn | None = None
    for message in incoming:
        turn = known.get(message.id) if message.id else None
        if turn is None:
            changes.new.append(message)
            continue
        if message.role != turn.role:
            raise errors.field_error("messages", f"message {message.id!r} is a {turn.role} message in this chat")
        if _comparable(message.parts) != _comparable(ui_message_of(turn).parts):
            changes.replace[turn.id] = message
        if last_known is None or turn.id > last_known.id:
            last_known = turn
        changes.new = []  # unknown messages before one the chat holds have no place in it
    if last_known is not None and stored and stored[-1].id > last_known.id:
        changes.delete_after = last_known.id
    remaining = [t for t in stored if changes.delete_after is None or t.id <= changes.delete_after]
    if changes.new and remaining:
        # the same question again, right after it went unanswered, is a retry: it is stored once
        first, last = changes.new[0], remaining[-1]
        if not first.id_given and first.role == last.role == "user" and first.text == ui_message_of(last).text:
            changes.new.pop(0)
    return changes


def title_of(messages: list[UIMessage]) -> str | None:
    first = next((m.text for m in messages if m.role == "user" and m.text.strip()), None)
    return " ".join(first.split())[:TITLE_CHARS] if first else None
