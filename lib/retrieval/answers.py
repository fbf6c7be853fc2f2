"""Questions answered from the documents: retrieve, pack the context, answer with citations.

    prepared = await prepare(question, settings)      # conversation, query rewrite, search, packing
    result = await answer(prepared, settings)         # Finished: answer, citations, usage, cost...
    async for event in stream_answer(prepared, settings): ...   # TextDelta... then Finished

Models other than the extractive one run through `lib.gateway.chain`, like `/api/ai_execute`:
retries, fallbacks, budgets, the cache and the usage ledger.

Everything that can fail because of the request (a bad filter, an unknown conversation) happens in
`prepare`, before a stream starts, so it is still a clean 4xx. The model `local/extractive` answers
without any provider: the best sentences of the passages, labelled as such.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import db, errors
from lib.config import Settings
from lib.providers.types import STOP, ChatRequest, Message, TextDelta
from lib.retrieval.context import (
    NO_ANSWER,
    Citation,
    Passage,
    build_prompt,
    cite,
    extractive_answer,
    numbered_passages,
    pack_context,
)
from lib.retrieval.conversations import Turn, append_turns, load_history, open_conversation, trim_history
from lib.retrieval.search import SearchHit, SearchOptions, search

if TYPE_CHECKING:
    from lib.gateway.chain import CallContext, ChatCall, ChatResult, StreamFailed

EXTRACTIVE_MODEL = "local/extractive"
REWRITE_PROMPT = (
    "Rewrite the user's last question as one standalone search query, resolving pronouns and "
    "references from the conversation. Reply with the query only."
)


@dataclass
class AnswerPrompt:
    """A stored prompt that writes the answer's messages instead of the built-in one (chosen by
    lib/prompts or an experiment): `write(question, numbered passages)` gives the system prompt and
    the messages that follow the conversation history. Its name and version go to the ledger."""

    write: Callable[[str, str], tuple[str | None, list[Message]]]
    name: str
    version: int


@dataclass
class Question:
    """One request to the rag function, in our terms."""

    query: str
    options: SearchOptions
    model: str | None = None
    history: list[Turn] | None = None  # sent by the client (useChat); None: read the stored one
    conversation_id: str | None = None
    keep_conversation: bool = True
    caller: str = "anonymous"
    user_id: str | None = None  # the end user, for per-user budgets
    request_id: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    prompt: AnswerPrompt | None = None


@dataclass
class Prepared:
    question: Question
    model: str
    search_query: str
    history: list[Turn]
    hits: list[SearchHit]
    passages: list[Passage]
    conversation_id: str | None
    rewrite_usage: dict[str, int] = field(default_factory=dict)
    rewrite_cost: float = 0.0


@dataclass
class Finished:
    """The end of a streamed answer: what the JSON response would carry besides the text."""

    answer: str
    citations: list[dict[str, Any]]
    usage: dict[str, int]
    cost_usd: float
    model: str
    conversation_id: str | None
    extractive: bool
    finish_reason: str = STOP  # the model's, in our words (lib.providers.types); STOP when extractive


def choose_model(requested: str | None, settings: Settings) -> str:
    """The request's model, else RAG_MODEL, else DEFAULT_MODEL when a provider key is set,
    else the offline extractive answer."""
    if requested:
        return requested
    if settings.rag_model:
        return settings.rag_model
    if settings.default_model and settings.has_provider_key:
        return settings.default_model
    return EXTRACTIVE_MODEL


async def run_search(query: str, options: SearchOptions, settings: Settings) -> list[SearchHit]:
    async with db.connect(settings) as conn:
        return await search(conn, query, options, settings)


async def prepare(question: Question, settings: Settings) -> Prepared:
    """Open the conversation, read its history, rewrite a follow-up, search and pack."""
    model = choose_model(question.model, settings)
    if model != EXTRACTIVE_MODEL:
        from lib.providers import resolve_model

        resolve_model(model, "model")  # an unknown model is a 422 before any work
    conversation_id = None
    async with db.connect(settings) as conn:
        if question.keep_conversation:
            conversation_id = await open_conversation(conn, question.conversation_id,
                                                      question.options.namespace, question.caller)
        if question.history is not None:
            history = trim_history(question.history, settings.history_tokens)
        elif conversation_id is not None:
            history = await load_history(conn, conversation_id, settings.history_tokens,
                                         namespace=question.options.namespace, caller=question.caller)
        else:
            history = []
    search_query, rewrite_usage, rewrite_cost = question.query, {}, 0.0
    if history and model != EXTRACTIVE_MODEL:
        search_query, rewrite_usage, rewrite_cost = await rewrite_query(question, history, model, settings)
    hits = await run_search(search_query, question.options, settings)
    passages = pack_context(hits, settings.context_tokens)
    return Prepared(question, model, search_query, history, hits, passages, conversation_id,
                    rewrite_usage, rewrite_cost)


# --- the language model, through the gateway's chain (retries, fallbacks, budgets, cache, ledger) ---


def _chat_call(model: str, system: str, messages: list[Message], question: Question, *,
               max_tokens: int | None, temperature: float | None) -> ChatCall:
    from lib.gateway.chain import ChatCall

    chat = ChatRequest(model="", messages=messages, system=system, max_tokens=max_tokens,
                       temperature=temperature, user=question.user_id)
    return ChatCall([model], chat)


def _call_context(question: Question, settings: Settings) -> CallContext:
    from lib.gateway.chain import CallContext

    prompt = question.prompt
    return CallContext(settings, question.request_id, question.user_id, question.caller,
                       prompt_name=prompt.name if prompt else None, prompt_version=prompt.version if prompt else None)


def _usage(result: ChatResult) -> dict[str, int]:
    usage = result.response.usage
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens}


def _add_usage(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    keys = ("input_tokens", "output_tokens", "total_tokens")
    return {k: int(a.get(k, 0)) + int(b.get(k, 0)) for k in keys}


async def rewrite_query(question: Question, history: list[Turn], model: str,
                        settings: Settings) -> tuple[str, dict[str, int], float]:
    """A standalone search query for a follow-up question, using the earlier turns."""
    from lib.gateway.chain import complete_chat

    transcript = "\n".join(f"{t.role}: {t.content}" for t in history[-6:])
    prompt = f"Conversation:\n{transcript}\n\nLast question: {question.query}"
    call = _chat_call(model, REWRITE_PROMPT, [Message("user", prompt)], question, max_tokens=100,
                      temperature=0.0)
    result = await complete_chat(call, _call_context(question, settings))
    rewritten = result.response.text.strip().strip('"').strip()
    return (rewritten or question.query), _usage(result), result.cost_usd or 0.0


# --- the answer ---------------------------------------------------------------------------------


async def answer(prepared: Prepared, settings: Settings) -> Finished:
    """The whole answer at once."""
    finished: Finished | None = None
    async with aclosing(stream_answer(prepared, settings)) as events:
        async for event in events:
            if isinstance(event, Finished):
                finished = event
            elif not isinstance(event, TextDelta):  # the model's stream broke off
                raise errors.UpstreamError(event.message, code=event.code)
    assert finished is not None
    return finished


async def stream_answer(prepared: Prepared,
                        settings: Settings) -> AsyncIterator[TextDelta | StreamFailed | Finished]:
    """The answer as text deltas, then one `Finished` with citations, usage and cost; or, when the
    model's stream breaks off after its first token, a `StreamFailed` instead of `Finished`.
    The question and answer are stored in the conversation once the answer is complete."""
    question = prepared.question
    usage: dict[str, int] = _add_usage({}, prepared.rewrite_usage)
    cost = prepared.rewrite_cost
    finish_reason = STOP
    citations: list[Citation]
    extractive = prepared.model == EXTRACTIVE_MODEL
    if not prepared.passages:
        text = NO_ANSWER
        citations = []
        yield TextDelta(text)
    elif extractive:
        extract = extractive_answer(question.query, prepared.passages)
        text, citations = extract.text, extract.citations
        yield TextDelta(text)
    else:
        from lib.gateway.chain import ChatCompleted, StreamFailed, stream_chat

        if question.prompt is not None:
            system, asked = question.prompt.write(question.query, numbered_passages(prepared.passages))
        else:
            system, user_message = build_prompt(question.query, prepared.passages)
            asked = [Message("user", user_message)]
        messages = [Message(t.role, t.content) for t in prepared.history] + asked
        call = _chat_call(prepared.model, system, messages, question, max_tokens=question.max_tokens,
                          temperature=question.temperature)
        pieces: list[str] = []
        # closed as soon as we are: a client that goes away stops the provider stream too
        async with aclosing(stream_chat(call, _call_context(question, settings))) as events:
            async for event in events:
                if isinstance(event, TextDelta) and event.text:
                    pieces.append(event.text)
                    yield event
                elif isinstance(event, StreamFailed):
                    yield event  # recorded by the chain; a broken answer is not stored
                    return
                elif isinstance(event, ChatCompleted):
                    usage = _add_usage(usage, _usage(event.result))
                    cost += event.result.cost_usd or 0.0
                    finish_reason = event.result.response.finish_reason
        text = "".join(pieces)
        citations = cite(text, prepared.passages)
    cited = [c.to_json() for c in citations]
    if prepared.conversation_id is not None:
        async with db.connect(settings) as conn:
            await append_turns(conn, prepared.conversation_id,
                               [Turn("user", question.query), Turn("assistant", text, cited)],
                               namespace=question.options.namespace, caller=question.caller)
    yield Finished(text, cited, usage, round(cost, 8), prepared.model, prepared.conversation_id, extractive,
                   finish_reason)
