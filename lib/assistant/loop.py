"""The assistant's answer: model calls in steps, with the server running its tools in between.

    answer = Answer(prepared.message_id)
    async for event in answer_events(prepared, answer, streamed=True): ...   # the chain's events, plus
        # ToolOutput after a tool the server ran, NextStep between two calls, MessageFinished last

Each step is one call through the model chain (retries, fallbacks, the cache, one ledger row per
attempt, budgets checked before each; the rate limit counts the request once). After a step that
asked for tools, the server runs the ones it has (`server_tools`), shows each result and sends them
back in the next step, up to `max_steps` calls; a step that asks for a tool the client defined ends
the answer there, as before, for the client to run it and send the result. The last allowed step
after a tool round is asked to answer without tools (`tool_choice: none`). The request's own
`tool_choice` applies to the first step only, so a forced call is not forced again and again.

Before each step the conversation is fitted to the model's window again (the answer's own tool
results count too). The answer is stored with the chat, when there is one, before `finish` goes out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lib.assistant.chats import UIMessage
from lib.assistant.context import ContextReport, Entry, Window, fit, system_tokens, tools_tokens
from lib.gateway.chain import CallContext, ChatCall, ChatCompleted, ChatResult, StreamFailed, replay
from lib.gateway.ui_stream import MessageFinished, NextStep, ToolOutput, ui_finish_reason
from lib.providers.types import OTHER, Message, TextDelta, Tool, ToolCall, ToolCallReady

if TYPE_CHECKING:
    from lib.assistant.tools import ServerTools, ToolRun


@dataclass
class StoredChat:
    """Where the answer is stored: the chat, and the turn it continues (if it goes on with one)."""

    id: str
    namespace: str
    owner: str
    continued_turn: int | None = None


@dataclass
class Prepared:
    """Everything the steps need, worked out before the first one (so refusals are still JSON)."""

    call: ChatCall  # the models and parameters; messages, system and tools are set per step
    ctx: CallContext
    entries: list[Entry]  # the conversation as fitted, oldest first, before this answer's own steps
    system: str | None
    tools: list[Tool]  # the client's and the server's
    window: Window
    report: ContextReport
    message_id: str
    server: ServerTools | None = None
    max_steps: int = 1
    continued: UIMessage | None = None  # the assistant message this answer goes on with
    chat: StoredChat | None = None
    served: dict[str, Any] = field(default_factory=dict)  # the stored prompt and experiment variant

    @property
    def room(self) -> int:
        """What the messages may take once the system prompt and tools are in."""
        return self.window.input_room - system_tokens(self.system) - tools_tokens(self.tools)


@dataclass
class Step:
    result: ChatResult
    runs: list[ToolRun] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        r = self.result.response
        data = {"model": self.result.model, "provider": self.result.provider, "finish_reason": r.finish_reason,
                "usage": r.usage.as_dict(), "cost_usd": self.result.cost_usd,
                "latency_ms": round(self.result.latency_ms, 1), "cached": self.result.cached,
                "tool_calls": [c.as_dict() for c in r.tool_calls]}
        if self.runs:
            data["tool_results"] = [{"tool_call_id": run.call.id, "name": run.call.name,
                                     **({"error": run.error} if run.error is not None else {"output": run.output}),
                                     "latency_ms": round(run.latency_ms, 1)} for run in self.runs]
        return data


@dataclass
class Answer:
    """What the answer has become so far: its UI parts, the messages it added, its steps."""

    message_id: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the model's turns and tool results
    steps: list[Step] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)

    # --- parts, as useChat builds them from the stream ---
    def start_step(self) -> None:
        self.parts.append({"type": "step-start"})

    def add_text(self, text: str) -> None:
        if self.parts and self.parts[-1].get("type") == "text":
            self.parts[-1]["text"] += text
        else:
            self.parts.append({"type": "text", "text": text})

    def add_call(self, call: ToolCall) -> None:
        self.parts.append({"type": f"tool-{call.name}", "toolCallId": call.id, "state": "input-available",
                           "input": call.parsed_arguments()})

    def add_run(self, run: ToolRun) -> None:
        for part in self.parts:
            if part.get("toolCallId") == run.call.id:
                if run.error is not None:
                    part.update(state="output-error", errorText=run.error)
                else:
                    part.update(state="output-available", output=run.output)

    # --- totals ---
    @property
    def last(self) -> ChatResult:
        return self.steps[-1].result

    @property
    def text(self) -> str:
        return self.last.response.text

    @property
    def finish_reason(self) -> str:
        return self.last.response.finish_reason

    def usage(self) -> dict[str, int]:
        total = {"input_tokens": 0, "output_tokens": 0, "cached_tokens": 0, "total_tokens": 0}
        for step in self.steps:
            for key, value in step.result.response.usage.as_dict().items():
                total[key] += value
        return total

    def cost_usd(self, report: ContextReport) -> float | None:
        costs = [step.result.cost_usd for step in self.steps]
        if report.summary:
            costs.append(report.summary["cost_usd"])
        return None if any(c is None for c in costs) else round(sum(costs), 10)

    def latency_ms(self) -> float:
        return round(sum(step.result.latency_ms for step in self.steps), 1)

    def ui_message(self, continued: UIMessage | None, metadata: dict[str, Any] | None = None) -> UIMessage:
        before = list(continued.parts) if continued is not None else []
        return UIMessage(self.message_id, "assistant", before + self.parts, metadata)

    def metadata(self, prepared: Prepared) -> dict[str, Any]:
        """`finish.messageMetadata` (with `finishReason`, added by the encoder), and the stored turn's."""
        last = self.last
        data: dict[str, Any] = {
            "model": last.model, "provider": last.provider, "usage": self.usage(),
            "costUsd": self.cost_usd(prepared.report), "latencyMs": self.latency_ms(),
            "cached": all(step.result.cached for step in self.steps), "steps": len(self.steps),
            "context": prepared.report.as_dict()}
        if prepared.chat is not None:
            data["conversationId"] = prepared.chat.id
        if self.citations:
            data["citations"] = self.citations
        return {**data, **prepared.served}


def _step_call(prepared: Prepared, answer: Answer, step: int) -> ChatCall:
    """The chat for this step: the conversation fitted again with the answer's own messages."""
    mine = Entry(list(answer.messages)) if answer.messages else None
    fitted = fit(prepared.entries + ([mine] if mine else []), prepared.room, prepared.window)
    if fitted.left_out:  # the answer's tool results pushed older turns out
        prepared.report.dropped_turns += len(fitted.left_out)
        prepared.entries = [e for e in fitted.kept if e is not mine]
    prepared.report.input_tokens_estimate = (fitted.tokens + system_tokens(prepared.system)
                                             + tools_tokens(prepared.tools))
    chat = prepared.call.chat
    choice = chat.tool_choice if step == 1 else ("auto" if chat.tool_choice not in (None, "none") else None)
    if step > 1 and step == prepared.max_steps and prepared.server is not None:
        choice = "none"  # the last call answers from what the tools found
    chat = replace(chat, messages=fitted.messages, system=prepared.system, tools=prepared.tools,
                   tool_choice=choice if prepared.tools else None)
    return ChatCall(prepared.call.models, chat, prepared.call.cache)


async def _model_events(call: ChatCall, ctx: CallContext, streamed: bool) -> AsyncIterator[Any]:
    """One step's events: streamed as the provider produces them, or the whole answer replayed."""
    from lib.gateway.chain import complete_chat, stream_chat

    if streamed:
        async with aclosing(stream_chat(call, ctx)) as events:
            async for event in events:
                yield event
        return
    result = await complete_chat(call, ctx)
    for event in replay(result.response):
        yield event
    yield ChatCompleted(result)


async def answer_events(prepared: Prepared, answer: Answer, *, streamed: bool) -> AsyncIterator[Any]:
    """The answer's events for the UI message encoder (see the module docstring); `answer`
    collects its parts, messages and steps as they happen."""
    for step in range(1, prepared.max_steps + 1):
        if step > 1:
            yield NextStep()
        answer.start_step()
        call = _step_call(prepared, answer, step)
        ctx = prepared.ctx if step == 1 else replace(prepared.ctx, count_request=False)
        result: ChatResult | None = None
        async with aclosing(_model_events(call, ctx, streamed)) as events:
            async for event in events:
                if isinstance(event, ChatCompleted):
                    result = event.result
                    continue
                if isinstance(event, StreamFailed):
                    yield event  # recorded by the chain; a broken answer is not stored
                    return
                if isinstance(event, TextDelta):
                    answer.add_text(event.text)
                elif isinstance(event, ToolCallReady):
                    answer.add_call(event.call)
                yield event
        assert result is not None
        current = Step(result)
        answer.steps.append(current)
        calls = result.response.tool_calls
        if not calls:
            answer.messages.append(Message("assistant", result.response.text))
            break
        server = prepared.server
        ran = [c for c in calls if server is not None and server.runs(c)]
        for call_ in ran:
            assert server is not None
            run = await server.run(call_)
            current.runs.append(run)
            answer.add_run(run)
            yield ToolOutput(call_.id, run.output, run.error)
        answer.messages += [Message("assistant", result.response.text, list(calls)),
                            *[run.message() for run in current.runs]]
        if len(ran) < len(calls):
            break  # the client runs the others, then sends their results to go on
    if prepared.server is not None:
        answer.citations = prepared.server.citations("".join(s.result.response.text for s in answer.steps))
        answer.parts += [_source_part(c) for c in answer.citations]
    metadata = answer.metadata(prepared)
    if prepared.chat is not None:
        await store_answer(prepared, answer, metadata)
    yield MessageFinished(answer.finish_reason, metadata, [_source_part(c) for c in answer.citations])


def _source_part(citation: dict[str, Any]) -> dict[str, Any]:
    from lib.retrieval.http import source_part

    return source_part(citation)


async def store_answer(prepared: Prepared, answer: Answer, metadata: dict[str, Any]) -> None:
    """The answer as the chat's newest turn, or added to the assistant turn it went on with."""
    from lib import db
    from lib.assistant.chats import entry_of
    from lib.retrieval.conversations import NewTurn, save_chat_turns

    chat = prepared.chat
    assert chat is not None
    stored_meta = {"finishReason": ui_finish_reason(answer.finish_reason or OTHER), **metadata}
    message = answer.ui_message(prepared.continued, stored_meta)
    turn = NewTurn(message.id or answer.message_id, "assistant", message.parts, message.text,
                   entry_of(message).tokens, stored_meta)
    async with db.connect(prepared.ctx.settings) as conn:
        if chat.continued_turn is not None:
            await save_chat_turns(conn, chat.id, namespace=chat.namespace, caller=chat.owner,
                                  replace={chat.continued_turn: turn})
        else:
            await save_chat_turns(conn, chat.id, namespace=chat.namespace, caller=chat.owner, new=[turn])
