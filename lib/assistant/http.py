"""`/api/ai_execute`'s edge for the assistant: a request -> `Prepared` (the stored chat brought up to
date, the context fitted, the server tools chosen) -> JSON or a stream; and a caller's chats read
back (GET) and deleted (DELETE).

Everything that can refuse a request (a namespace the key may not use, a conversation that does not
fit, a bad tool name) happens in `prepare`, before a stream starts, so it is still a clean 4xx.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.assistant.chats import (
    UIMessage,
    entry_of,
    incoming_messages,
    new_message_id,
    reconcile,
    title_of,
    ui_message_of,
)
from lib.assistant.context import (
    ContextReport,
    Entry,
    Window,
    exchanges,
    fit,
    summarize,
    summary_reserve,
    system_tokens,
    tools_tokens,
    window_for,
    with_summary,
)
from lib.assistant.loop import Answer, Prepared, StoredChat, answer_events
from lib.gateway.request import MessageIn, json_output
from lib.logs import log
from lib.providers.types import Message

if TYPE_CHECKING:
    from lib.assistant.request import AssistantRequest, ChatRef, ChatsQuery
    from lib.gateway.chain import CallContext, ChatCall
    from lib.retrieval.conversations import Conversation, Turns
    from lib.web import Request, StreamingResponse


async def execute(request: Request, body: AssistantRequest, call: ChatCall, ctx: CallContext, *,
                  served: dict[str, Any] | None = None) -> dict[str, Any] | StreamingResponse:
    """Answer `body` (the model call `call` worked out from it): JSON, or a stream once it starts.
    `served` (which stored prompt and experiment variant ran, lib/experiments) joins the answer's
    metadata: the JSON, the stream's finish and the stored turn."""
    prepared = await prepare(request, body, call, ctx)
    prepared.served = served or {}
    answer = Answer(prepared.message_id)
    if not body.streams:
        async with aclosing(answer_events(prepared, answer, streamed=False)) as events:
            async for _ in events:
                pass
        return answer_json(request, body, prepared, answer)
    from lib.gateway.ui_stream import stream_response

    headers = {"x-conversation-id": prepared.chat.id} if prepared.chat else None
    return await stream_response(answer_events(prepared, answer, streamed=True), protocol=body.protocol,
                                 message_id=prepared.message_id, headers=headers)


def answer_json(request: Request, body: AssistantRequest, prepared: Prepared, answer: Answer) -> dict[str, Any]:
    """The last step's answer as before (`text`, `message`, ...) with the totals of every step, the
    messages this answer added (to send back for a client-side tool) and the UI message."""
    last = answer.last
    data: dict[str, Any] = {"id": request.request_id, **last.as_dict()}
    data.update(
        usage=answer.usage(), cost_usd=answer.cost_usd(prepared.report), latency_ms=answer.latency_ms(),
        cached=all(step.result.cached for step in answer.steps),
        attempts=[a.as_dict() for step in answer.steps for a in step.result.attempts],
        steps=[step.as_dict() for step in answer.steps],
        messages=[_openai_message(m) for m in answer.messages],
        context=prepared.report.as_dict(), conversation_id=prepared.chat.id if prepared.chat else None,
        message_id=answer.message_id,
        ui_message=answer.ui_message(prepared.continued, _turn_metadata(answer, prepared)).as_json())
    if answer.citations:
        data["citations"] = answer.citations
    return {**data, **json_output(body, answer.text), "metadata": body.metadata, **prepared.served}


def _turn_metadata(answer: Answer, prepared: Prepared) -> dict[str, Any]:
    from lib.gateway.ui_stream import ui_finish_reason

    return {"finishReason": ui_finish_reason(answer.finish_reason), **answer.metadata(prepared)}


def _openai_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    data: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        data["tool_calls"] = [c.as_dict() for c in m.tool_calls]
    return data


# --- before the first step ----------------------------------------------------------------------


async def prepare(request: Request, body: AssistantRequest, call: ChatCall, ctx: CallContext) -> Prepared:
    from lib.assistant.tools import ServerTools

    settings = request.settings
    if body.chat_id is not None or body.server_tools:
        request.require_namespace(body.namespace)
    tools, system, server = list(call.chat.tools), call.chat.system, None
    if body.server_tools:
        _check_server_tools(body, call)
        server = ServerTools(list(body.server_tools), body.namespace, settings, request.request_id)
        tools += server.definitions()
        if server.instructions():
            system = f"{system}\n\n{server.instructions()}" if system else server.instructions()
    window = window_for(call.models, body.max_tokens, settings)
    report = ContextReport(body.context or settings.context_strategy, window.context_window, window.known)
    if body.chat_id is not None:
        sent = await _stored_conversation(request, body, window, report)
    else:
        sent = _sent_conversation(body, call)
    room = window.input_room - system_tokens(system) - tools_tokens(tools)
    kept, system, summarized = await _fit(sent.entries, room, window, system, report, sent.summary, sent.covered,
                                          sent.chat, call, ctx)
    if summarized:  # the summary's call counted the request against the rate limit
        ctx = replace(ctx, count_request=False)
    if sent.continued is not None:
        message_id = sent.continued.id or new_message_id()
    elif body.messageId and body.messageId not in sent.taken:
        message_id = body.messageId  # useChat regenerating the message it names
    else:
        message_id = new_message_id()
    if server is not None:  # what one tool result may take, so that a few of them still fit
        server.passage_tokens = max(200, min(settings.context_tokens, room // 3))
        server.fetch_tokens = max(200, min(4000, room // 4))
    return Prepared(call, ctx, kept, system, tools, window, report, message_id, server, body.max_steps,
                    sent.continued, sent.chat)


@dataclass
class _Conversation:
    """The conversation before this answer: its turns, the assistant message the answer goes on
    with (if any), the message ids it holds, and the stored chat's summary."""

    entries: list[Entry]
    continued: UIMessage | None
    taken: set[str | None]
    chat: StoredChat | None = None
    summary: str | None = None
    covered: int = 0


def _sent_conversation(body: AssistantRequest, call: ChatCall) -> _Conversation:
    """No stored chat: the messages the request sent, one turn each."""
    last = (body.messages or [None])[-1]
    goes_on = last is not None and last.role == "assistant" and last.id and last.parts is not None
    return _Conversation([Entry([m]) for m in call.chat.messages],
                         UIMessage(last.id, "assistant", list(last.parts)) if goes_on else None,
                         {m.id for m in body.messages or [] if m.id})


async def _stored_conversation(request: Request, body: AssistantRequest, window: Window,
                               report: ContextReport) -> _Conversation:
    """A stored chat, brought up to date with what the request sent."""
    from lib.retrieval.conversations import check_conversation_id, conversation_owner

    chat_id = body.chat_id
    assert chat_id is not None
    try:
        check_conversation_id(chat_id)
    except errors.ApiError:  # useChat's `id`: name the field it came in
        raise errors.field_error("conversation_id" if body.conversation_id else "id",
                                 "use 1 to 128 letters, digits or - _ : .") from None
    chat = StoredChat(chat_id, body.namespace, conversation_owner(request.caller, request.user_id))
    summarized = report.strategy == "summarize"
    # a drop reads no further back than twice the window: older turns could not be sent anyway
    conversation, turns = await _bring_up_to_date(request.settings, chat, body, summarized=summarized,
                                                  within_tokens=2 * window.context_window)
    report.dropped_turns = turns.older
    messages = [ui_message_of(t) for t in turns]
    continued = messages[-1] if messages[-1].role == "assistant" else None
    chat.continued_turn = turns[-1].id if continued is not None else None
    sent = _Conversation([entry_of(m, t.id) for m, t in zip(messages, turns, strict=True)], continued,
                         {m.id for m in messages} | {m.id for m in body.messages or [] if m.id}, chat)
    if summarized and conversation.summary:
        sent.summary, sent.covered = conversation.summary, conversation.summary_turns
    return sent


def _check_server_tools(body: AssistantRequest, call: ChatCall) -> None:
    from lib.providers import resolve_model

    clash = sorted({t.name for t in call.chat.tools} & set(body.server_tools))
    if clash:
        raise errors.field_error("tools", f"{', '.join(clash)} is a server tool: leave it out of `tools` "
                                 "or out of `server_tools`")
    for i, name in enumerate(call.models):
        spec, _ = resolve_model(name, "model" if i == 0 else f"fallbacks.{i - 1}")
        if not spec.supports_tools:
            raise errors.field_error("server_tools", f"{name} does not take tools")


async def _bring_up_to_date(settings: Any, chat: StoredChat, body: AssistantRequest, *, summarized: bool,
                            within_tokens: int) -> tuple[Conversation, Turns]:
    """Store what the request adds to the chat (see lib/assistant/chats.py), and read it back: the
    turns its summary does not cover (`summarized`), else the newest that fit in `within_tokens`."""
    from lib import db
    from lib.retrieval.conversations import (
        NewTurn,
        chat_turns,
        find_conversation,
        open_conversation,
        save_chat_turns,
    )

    scope = {"namespace": chat.namespace, "caller": chat.owner}
    sent = body.messages or [MessageIn(role="user", content=body.prompt)]

    async def read(conn: Any) -> tuple[Conversation | None, Turns]:
        conversation = await find_conversation(conn, chat.id, **scope)
        if summarized:
            after = conversation.summary_through if conversation is not None and conversation.summary else None
            return conversation, await chat_turns(conn, chat.id, **scope, after=after)
        return conversation, await chat_turns(conn, chat.id, **scope, within_tokens=within_tokens)

    async with db.connect(settings) as conn:
        conversation, turns = await read(conn)
        previous = ui_message_of(turns[-1]) if turns else None
        incoming = incoming_messages(sent, previous)
        changes = reconcile(turns, incoming)
        if not turns and not changes.new:
            raise errors.field_error("messages", "there is no user message to answer")
        if changes:
            await open_conversation(conn, chat.id, chat.namespace, chat.owner)
            def stored(message: UIMessage) -> NewTurn:
                return NewTurn(message.id or new_message_id(), message.role, message.parts, message.text,
                               entry_of(message).tokens, message.metadata)

            await save_chat_turns(conn, chat.id, **scope, new=[stored(m) for m in changes.new],
                                  replace={turn: stored(m) for turn, m in changes.replace.items()},
                                  delete_after=changes.delete_after, title=title_of(incoming))
            conversation, turns = await read(conn)
    if conversation is None or not turns:
        raise errors.field_error("messages", "there is no user message to answer")
    return conversation, turns


async def _fit(entries: list[Entry], room: int, window: Window, system: str | None, report: ContextReport,
               summary: str | None, covered: int, chat: StoredChat | None, call: ChatCall,
               ctx: CallContext) -> tuple[list[Entry], str | None, bool]:
    """The entries that are sent, the system prompt with the chat's summary when there is one (see
    lib/assistant/context.py for the rules), and whether a summary call was made."""
    if report.strategy == "drop":
        fitted = fit(entries, room, window)
        report.dropped_turns += len(fitted.left_out)
        return fitted.kept, system, False
    reserve = summary_reserve(room)
    total = sum(e.tokens for e in entries)
    if total <= (room - reserve if summary else room):  # nothing new to fold
        report.summarized_turns = covered if summary else 0
        return entries, with_summary(system, summary, covered), False
    groups = exchanges([e for e in entries if e.messages])
    if groups and sum(e.tokens for e in groups[-1]) > room - reserve:
        fitted = fit(entries, room, window)  # the newest exchange leaves no room for a summary
        report.dropped_turns += len(fitted.left_out)
        report.notice = "the newest messages leave no room for a summary: older turns were dropped"
        return fitted.kept, system, False
    fitted = fit(entries, room - reserve, window, keep_within=(room - reserve) // 2)
    model = _summary_model(call, ctx)
    try:
        written = await summarize(summary, fitted.left_out, model=model, max_tokens=reserve, ctx=ctx)
    except (errors.PaymentRequired, errors.RateLimited):
        raise  # the request itself is refused, summary or not
    except errors.ApiError as exc:  # the answer matters more than its summary: drop instead
        log("warning", "summary_failed", request_id=ctx.request_id, model=model, code=exc.code, detail=exc.message)
        fitted = fit(entries, room, window)
        report.dropped_turns += len(fitted.left_out)
        report.notice = f"the summary could not be written ({exc.code}): older turns were dropped instead"
        return fitted.kept, system, True
    covered += len(fitted.left_out)
    report.summary = written.report(model)
    report.summarized_turns = covered
    through = fitted.left_out[-1].turn_id
    if chat is not None and through is not None:
        from lib import db
        from lib.retrieval.conversations import save_summary

        async with db.connect(ctx.settings) as conn:
            await save_summary(conn, chat.id, namespace=chat.namespace, caller=chat.owner, summary=written.text,
                               through=through, turns=covered)
    return fitted.kept, with_summary(system, written.text, covered), True


def _summary_model(call: ChatCall, ctx: CallContext) -> str:
    from lib.providers import resolve_model

    name = ctx.settings.summary_model
    if not name:
        return call.models[0]
    try:
        resolve_model(name, "SUMMARY_MODEL")
    except errors.ApiError as exc:
        raise errors.ConfigurationError(f"SUMMARY_MODEL: {exc.message}") from None
    return name


# --- GET and DELETE: a caller's chats ---------------------------------------------------------------


def _not_found(conversation_id: str) -> errors.ApiError:
    # the same answer whether the chat is another caller's or nobody's: ids do not leak
    return errors.NotFound(f"there is no conversation {conversation_id!r} here", code="conversation_not_found")


async def read_chats(request: Request, query: ChatsQuery) -> dict[str, Any]:
    """One chat as UI messages (`?conversation_id=`), or the caller's chats, most recent first."""
    from lib import db
    from lib.retrieval.conversations import (
        chat_turns,
        conversation_owner,
        find_conversation,
        list_conversations,
    )

    request.require_namespace(query.namespace)
    scope = {"namespace": query.namespace, "caller": conversation_owner(request.caller, request.user_id)}
    async with db.connect(request.settings) as conn:
        if query.conversation_id is None:
            chats = await list_conversations(conn, **scope, limit=query.limit, offset=query.offset)
            return {"namespace": query.namespace, "conversations": chats, "limit": query.limit,
                    "offset": query.offset}
        conversation = await find_conversation(conn, query.conversation_id, **scope)
        if conversation is None:
            raise _not_found(query.conversation_id)
        turns = await chat_turns(conn, query.conversation_id, **scope)
    return {
        "conversation_id": conversation.id, "namespace": conversation.namespace, "title": conversation.title,
        "messages": [ui_message_of(t).as_json() for t in turns],
        "summary": ({"text": conversation.summary, "turns": conversation.summary_turns}
                    if conversation.summary else None),
        "created_at": conversation.created_at.isoformat(), "updated_at": conversation.updated_at.isoformat(),
    }


async def delete_chat(request: Request, query: ChatRef) -> dict[str, Any]:
    from lib import db
    from lib.retrieval.conversations import conversation_owner, delete_conversation

    request.require_namespace(query.namespace)
    async with db.connect(request.settings) as conn:
        turns = await delete_conversation(conn, query.conversation_id, namespace=query.namespace,
                                          caller=conversation_owner(request.caller, request.user_id))
    if turns is None:
        raise _not_found(query.conversation_id)
    return {"conversation_id": query.conversation_id, "namespace": query.namespace, "deleted": True, "turns": turns}
