"""The rag function's two uses of a language model, through `lib.gateway.chain` (retries, fallbacks, budgets,
cache, ledger): a whole reply (query rewriting) and a streamed answer.

    reply = await complete(model, system, messages, settings, caller=..., user_id=..., request_id=...)
    async for piece in stream(...): str for each text delta, then one Reply with usage and cost
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lib import errors
from lib.config import Settings


@dataclass
class Reply:
    text: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0


def _call(model: str, system: str, messages: list[dict[str, str]], max_tokens: int | None,
          temperature: float | None, user: str | None):
    from lib.gateway.chain import ChatCall
    from lib.providers.types import ChatRequest, Message

    chat = ChatRequest(model="", messages=[Message(m["role"], m["content"]) for m in messages],
                       system=system, max_tokens=max_tokens, temperature=temperature, user=user)
    return ChatCall([model], chat)


def _usage(result) -> dict[str, int]:
    usage = result.response.usage
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens}


async def complete(model: str, system: str, messages: list[dict[str, str]], settings: Settings, *,
                   caller: str | None = None, user_id: str | None = None, request_id: str | None = None,
                   max_tokens: int | None = None, temperature: float | None = None) -> Reply:
    from lib.gateway.chain import CallContext, complete_chat

    result = await complete_chat(_call(model, system, messages, max_tokens, temperature, user_id),
                                 CallContext(settings, request_id, user_id, caller))
    return Reply(result.response.text, _usage(result), result.cost_usd or 0.0)


async def stream(model: str, system: str, messages: list[dict[str, str]], settings: Settings, *,
                 caller: str | None = None, user_id: str | None = None, request_id: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None) -> AsyncIterator[str | Reply]:
    from lib.gateway.chain import CallContext, ChatCompleted, StreamFailed, stream_chat
    from lib.providers.types import TextDelta

    events = stream_chat(_call(model, system, messages, max_tokens, temperature, user_id),
                         CallContext(settings, request_id, user_id, caller))
    async for event in events:
        if isinstance(event, TextDelta):
            if event.text:
                yield event.text
        elif isinstance(event, StreamFailed):
            raise errors.UpstreamError(event.message, code=event.code)
        elif isinstance(event, ChatCompleted):
            yield Reply(event.result.response.text, _usage(event.result), event.result.cost_usd or 0.0)
