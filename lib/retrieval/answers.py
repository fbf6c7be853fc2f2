"""Questions answered from the documents: retrieve, pack the context, answer with citations.

    prepared = await prepare(question, settings)      # conversation, query rewrite, search, packing
    result = await answer(prepared, settings)         # {"answer", "citations", "usage", ...}
    async for event in stream_answer(prepared, settings): ...   # TextPiece ... then Finished

Everything that can fail because of the request (a bad filter, an unknown conversation) happens in
`prepare`, before a stream starts, so it is still a clean 4xx. The model `local/extractive` answers
without any provider: the best sentences of the passages, labelled as such.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from lib import db
from lib.config import Settings
from lib.retrieval.context import (
    NO_ANSWER,
    Citation,
    Passage,
    build_prompt,
    cite,
    extractive_answer,
    pack_context,
)
from lib.retrieval.conversations import Turn, append_turns, load_history, open_conversation, trim_history
from lib.retrieval.search import SearchHit, SearchOptions, search

EXTRACTIVE_MODEL = "local/extractive"
REWRITE_PROMPT = (
    "Rewrite the user's last question as one standalone search query, resolving pronouns and "
    "references from the conversation. Reply with the query only."
)


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
class TextPiece:
    text: str


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


# --- the language model -----------------------------------------------------------------------


def _messages(history: list[Turn], final_user: str) -> list[dict[str, str]]:
    return [{"role": t.role, "content": t.content} for t in history] + [{"role": "user", "content": final_user}]


async def rewrite_query(question: Question, history: list[Turn], model: str,
                        settings: Settings) -> tuple[str, dict[str, int], float]:
    """A standalone search query for a follow-up question, using the earlier turns."""
    from lib.retrieval.answer_llm import complete

    transcript = "\n".join(f"{t.role}: {t.content}" for t in history[-6:])
    prompt = f"Conversation:\n{transcript}\n\nLast question: {question.query}"
    reply = await complete(model, REWRITE_PROMPT, [{"role": "user", "content": prompt}], settings,
                           caller=question.caller, user_id=question.user_id,
                           request_id=question.request_id, max_tokens=100,
                           temperature=0.0)
    rewritten = reply.text.strip().strip('"').strip()
    return (rewritten or question.query), reply.usage, reply.cost_usd


def _add_usage(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    keys = ("input_tokens", "output_tokens", "total_tokens")
    return {k: int(a.get(k, 0)) + int(b.get(k, 0)) for k in keys}


def _no_context(prepared: Prepared) -> bool:
    return not prepared.passages


async def answer(prepared: Prepared, settings: Settings) -> Finished:
    """The whole answer at once."""
    finished: Finished | None = None
    async for event in stream_answer(prepared, settings):
        if isinstance(event, Finished):
            finished = event
    assert finished is not None
    return finished


async def stream_answer(prepared: Prepared, settings: Settings) -> AsyncIterator[TextPiece | Finished]:
    """The answer as text pieces, then one `Finished` with citations, usage and cost.
    The question and answer are stored in the conversation once the answer is complete."""
    question = prepared.question
    usage: dict[str, int] = _add_usage({}, prepared.rewrite_usage)
    cost = prepared.rewrite_cost
    citations: list[Citation]
    extractive = prepared.model == EXTRACTIVE_MODEL
    if _no_context(prepared):
        text = NO_ANSWER
        citations = []
        yield TextPiece(text)
    elif extractive:
        extract = extractive_answer(question.query, prepared.passages)
        text, citations = extract.text, extract.citations
        yield TextPiece(text)
    else:
        from lib.retrieval.answer_llm import stream

        system, user_message = build_prompt(question.query, prepared.passages)
        pieces: list[str] = []
        async for event in stream(prepared.model, system, _messages(prepared.history, user_message),
                                  settings, caller=question.caller, user_id=question.user_id,
                                  request_id=question.request_id,
                                  max_tokens=question.max_tokens, temperature=question.temperature):
            if isinstance(event, str):
                pieces.append(event)
                yield TextPiece(event)
            else:
                usage = _add_usage(usage, event.usage)
                cost += event.cost_usd
        text = "".join(pieces)
        citations = cite(text, prepared.passages)
    cited = [c.to_json() for c in citations]
    if prepared.conversation_id is not None:
        async with db.connect(settings) as conn:
            await append_turns(conn, prepared.conversation_id,
                               [Turn("user", question.query), Turn("assistant", text, cited)],
                               namespace=question.options.namespace, caller=question.caller)
    yield Finished(text, cited, usage, round(cost, 8), prepared.model, prepared.conversation_id, extractive)
