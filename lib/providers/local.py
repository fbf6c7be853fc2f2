"""The offline `local/...` provider: answers with no key and no network, and says so.

`local/echo` is not a language model. It repeats the last user message (or tool result) inside a
label that names it as the offline echo, so nobody mistakes its output for a model's answer. It
exists so that the whole path (streaming, ledger, cache, tools, useChat) runs on a laptop with no
keys. Two conventions make it useful beyond repeating:

- Tools: a user message whose lines start with `/tool <name> <JSON arguments>` makes it call
  those tools (only tools the request offers), e.g. `/tool search_documents {"query": "warranty"}`.
  Once a tool result has come back it echoes that result, so a tool loop ends after one round.
- `max_tokens`: an echo longer than that many words is cut to them; one of several lines is first
  condensed, each line to its first words, so a transcript comes back as a short, deterministic
  digest of its lines (what an offline running summary of a chat looks like).

It calls nothing that can fail the way a provider does, so it has no `map_exceptions`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator

from lib.providers.types import (
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
from lib.tokens import count_tokens

LABEL = "[offline local/echo: no language model was called]"
TOOL_COMMAND = re.compile(r"^/tool\s+(\S+)\s*(.*)$")
WORDS_PER_CONDENSED_LINE = 12


def answer_text(request: ChatRequest) -> str:
    last = next((m.content for m in reversed(request.messages) if m.role in ("user", "tool")), "")
    if (request.response_format or {}).get("type") in ("json_object", "json_schema"):
        return json.dumps({"offline": True, "model": "local/echo", "echo": last})
    return f"{LABEL} You said: {last}" if last else f"{LABEL} (no user message)"


def condensed(text: str, max_words: int) -> str:
    """At most `max_words` words: each line cut to its first words first, when the text is longer."""
    words = text.split(" ")
    if len(words) <= max_words:
        return text
    if "\n" not in text:
        return " ".join(words[: max(1, max_words)])
    lines = []
    for line in text.splitlines():
        cut = line.split()
        lines.append(" ".join(cut[:WORDS_PER_CONDENSED_LINE]) + (" ..." if len(cut) > WORDS_PER_CONDENSED_LINE else ""))
    return " ".join(" ".join(lines).split(" ")[: max(1, max_words)])


def tool_calls(request: ChatRequest) -> list[ToolCall] | str:
    """The calls a `/tool` message asks for, or the text explaining why there are none to make.
    An empty list: the last message is no `/tool` command."""
    last = request.messages[-1] if request.messages else None
    if last is None or last.role != "user" or not last.content.lstrip().startswith("/tool"):
        return []
    offered = {tool.name for tool in request.tools}
    calls: list[ToolCall] = []
    for line in last.content.strip().splitlines():
        match = TOOL_COMMAND.match(line.strip())
        if match is None:
            continue
        name, raw = match.group(1), match.group(2).strip() or "{}"
        if name not in offered or request.tool_choice == "none":
            return f"{LABEL} There is no tool {name!r} to call here (offered: {', '.join(sorted(offered)) or 'none'})."
        try:
            arguments = json.loads(raw)
        except json.JSONDecodeError:
            return f"{LABEL} The arguments of /tool {name} are not JSON: {raw}"
        # the same conversation gives the same ids, and no two calls of one chat share one
        seed = f"{len(request.messages)}:{len(calls)}:{name}:{raw}".encode()
        calls.append(ToolCall(f"call_{hashlib.sha256(seed).hexdigest()[:16]}", name, json.dumps(arguments)))
    return calls


def _usage(request: ChatRequest, text: str) -> Usage:
    prompt = (request.system or "") + "\n".join(m.content for m in request.messages)
    return Usage(input_tokens=count_tokens(prompt), output_tokens=count_tokens(text))


class LocalEcho:
    async def complete(self, request: ChatRequest, target: Target) -> ChatResponse:
        calls = tool_calls(request)
        if isinstance(calls, list) and calls:
            arguments = " ".join(call.arguments for call in calls)
            return ChatResponse(text="", tool_calls=calls, finish_reason=TOOL_CALLS,
                                usage=_usage(request, arguments), model="local/echo")
        text = calls if isinstance(calls, str) else answer_text(request)
        if request.max_tokens is not None:
            text = condensed(text, request.max_tokens)
        return ChatResponse(text=text, finish_reason=STOP, usage=_usage(request, text), model="local/echo")

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request, target)
        pieces = response.text.split(" ") if response.text else []
        for i, piece in enumerate(pieces):
            yield TextDelta(piece + (" " if i < len(pieces) - 1 else ""))
        for call in response.tool_calls:
            yield ToolCallStarted(call.id, call.name)
            yield ToolCallReady(call)
        yield StreamFinished(response.finish_reason, response.usage, response.model)


ADAPTER = LocalEcho()
