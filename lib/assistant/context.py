"""Fitting a conversation into the model's context window, and folding what does not fit into a
running summary.

    window = window_for(call.models, max_tokens, settings)
    fitted = fit(entries, window.input_room - fixed_tokens, window)   # 422 if the newest cannot fit

What always stays: the system prompt, the tools, and the newest exchange (the last user message and
everything after it, so a tool call is never parted from its result, nor a question from its
answer in progress). Older exchanges are kept newest first while they fit and dropped whole from the
oldest, so the history never opens with an answer whose question is gone.

Sizes are `lib.tokens.count_tokens` estimates (within about 15% of a real BPE tokenizer), with a
margin: only 85% of the room a window leaves once the answer's share is set aside is filled, and
every message counts 4 tokens more for its framing. The answer's share is the request's
`max_tokens`, else the model's output limit up to 4,096 tokens. When a request names fallbacks,
the smallest window of the chain is the one fitted. A model the table does not list gets its
conservative default window (8,192 tokens): older turns are trimmed to it, but the newest exchange
is sent even when it exceeds that guess (its real window may well hold it); a model whose window is
known refuses such a request with a 422 that says by how much it is over.

Summaries (`"context": "summarize"` or CONTEXT_STRATEGY=summarize): the exchanges that no longer
fit are folded into a running summary by SUMMARY_MODEL (default: the request's own model). It is
rewritten only when the turns it does not cover outgrow the room: it then folds enough of them that
the newest turns take at most half the room, so the next several requests reuse it unchanged. A
stored chat keeps the summary and the last turn it covers, so each turn is summarized once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.config import Settings
from lib.providers.pricing import limits_of
from lib.providers.types import ChatRequest, Message, Tool
from lib.tokens import count_tokens, truncate_to_tokens

if TYPE_CHECKING:
    from lib.gateway.chain import CallContext, ChatResult

SAFETY = 0.85  # fill 85% of the room: the estimate's median error is about 15%
MESSAGE_OVERHEAD = 4  # role and framing of each message
DEFAULT_ANSWER_RESERVE = 4096  # the answer's share when the request sets no max_tokens
SUMMARY_MAX_TOKENS = 800
TRANSCRIPT_TURN_TOKENS = 400  # one turn's share of what the summarizer reads

SUMMARY_PROMPT = (
    "You keep a running summary of a conversation between a user and an assistant, for an assistant "
    "that will no longer see the older turns. Rewrite the summary so far to include the new turns. "
    "Keep names, numbers, decisions, preferences, facts the user gave, what the assistant found with "
    "its tools, and open questions. Write plain prose of at most {words} words, with no preamble."
)
SUMMARY_HEADING = ("Summary of the earlier conversation ({turns} older turns are folded into it and "
                   "not shown):\n")


# --- sizes --------------------------------------------------------------------------------------


def message_tokens(message: Message) -> int:
    tokens = count_tokens(message.content) + MESSAGE_OVERHEAD
    for call in message.tool_calls:
        tokens += count_tokens(call.name) + count_tokens(call.arguments) + MESSAGE_OVERHEAD
    return tokens


def tools_tokens(tools: list[Tool]) -> int:
    if not tools:
        return 0
    return count_tokens(json.dumps([vars(t) for t in tools], separators=(",", ":")))


def system_tokens(system: str | None) -> int:
    return count_tokens(system) + MESSAGE_OVERHEAD if system else 0


@dataclass
class Window:
    """The room the chain's models leave: the smallest window, less the answer's share."""

    model: str
    context_window: int
    answer_reserve: int
    known: bool

    @property
    def input_room(self) -> int:
        return int((self.context_window - self.answer_reserve) * SAFETY)


def window_for(models: list[str], max_tokens: int | None, settings: Settings) -> Window:
    """The tightest window of the models a call may go to (the primary and its fallbacks)."""
    windows = []
    for name in models:
        limits = limits_of(name, settings)
        reserve = max_tokens if max_tokens is not None else min(limits.max_output_tokens, DEFAULT_ANSWER_RESERVE)
        windows.append(Window(name, limits.context_window, reserve, limits.known))
    window = min(windows, key=lambda w: w.input_room)
    if window.input_room <= 0 and window.known:
        raise errors.field_error("max_tokens", f"{window.model} has a context window of {window.context_window} "
                                 f"tokens; max_tokens {window.answer_reserve} leaves no room for the prompt")
    return window


# --- what is kept ---------------------------------------------------------------------------------


@dataclass
class Entry:
    """One turn of the conversation as the model sees it: a user message, or an assistant message
    with its tool calls and their results. `turn_id` is its row in a stored chat."""

    messages: list[Message]
    turn_id: int | None = None
    tokens: int = -1

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = sum(message_tokens(m) for m in self.messages)

    @property
    def opens_exchange(self) -> bool:
        return bool(self.messages) and self.messages[0].role == "user"


def exchanges(entries: list[Entry]) -> list[list[Entry]]:
    """Entries grouped from each user turn to the next: the units that are kept or dropped."""
    groups: list[list[Entry]] = []
    for entry in entries:
        if entry.opens_exchange or not groups:
            groups.append([entry])
        else:
            groups[-1].append(entry)
    return groups


def _cost(group: list[Entry]) -> int:
    return sum(entry.tokens for entry in group)


@dataclass
class Fitted:
    kept: list[Entry]
    left_out: list[Entry]  # older entries that are not sent (dropped, or to be summarized)

    @property
    def tokens(self) -> int:
        return _cost(self.kept)

    @property
    def messages(self) -> list[Message]:
        return [m for entry in self.kept for m in entry.messages]


def too_long(window: Window, needed: int, room: int) -> errors.ApiError:
    over = needed - room
    return errors.ValidationFailed(
        f"the newest message needs about {needed} tokens, but only {max(room, 0)} fit in {window.model}'s "
        f"context window ({window.context_window} tokens, {window.answer_reserve} kept for the answer, "
        f"a 15% margin, the system prompt and tools): shorten it by about {over} tokens",
        code="context_too_long",
        details={"needed_tokens": needed, "available_tokens": max(room, 0), "over_by_tokens": over,
                 "context_window": window.context_window, "model": window.model})


def fit(entries: list[Entry], room: int, window: Window, *, keep_within: int | None = None) -> Fitted:
    """The newest exchanges that fit in `room` tokens (or, with `keep_within`, in that much less),
    oldest first. The newest exchange is always kept; over the room of a known window it is a 422."""
    groups = exchanges([e for e in entries if e.messages])
    if not groups:
        return Fitted([], [])
    newest = groups[-1]
    used = _cost(newest)
    if used > room and window.known:
        raise too_long(window, used, room)
    limit = room if keep_within is None else keep_within
    kept = [newest]
    index = len(groups) - 1
    while index > 0 and used + _cost(groups[index - 1]) <= limit:
        index -= 1
        used += _cost(groups[index])
        kept.insert(0, groups[index])
    return Fitted([e for g in kept for e in g], [e for g in groups[:index] for e in g])


# --- what the response says about it ---------------------------------------------------------------


@dataclass
class ContextReport:
    """What was left out of the model's view, as the response and `finish.messageMetadata` say."""

    strategy: str
    context_window: int
    window_known: bool
    dropped_turns: int = 0
    summarized_turns: int = 0
    input_tokens_estimate: int = 0
    summary: dict[str, Any] | None = None  # the summary call(s) of this request, if any
    notice: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "strategy": self.strategy, "dropped_turns": self.dropped_turns,
            "summarized_turns": self.summarized_turns, "input_tokens_estimate": self.input_tokens_estimate,
            "context_window": self.context_window, "window_known": self.window_known}
        if self.summary:
            data["summary"] = self.summary
        if self.notice:
            data["notice"] = self.notice
        return data


# --- summaries --------------------------------------------------------------------------------------


def summary_reserve(room: int) -> int:
    return max(64, min(SUMMARY_MAX_TOKENS, room // 4))


def with_summary(system: str | None, summary: str | None, turns: int) -> str | None:
    if not summary:
        return system
    block = SUMMARY_HEADING.format(turns=turns) + summary
    return f"{system}\n\n{block}" if system else block


def transcript(entries: list[Entry]) -> list[str]:
    """One line per message, each cut to its share, for the summarizer."""
    lines = []
    for entry in entries:
        for m in entry.messages:
            if m.role == "tool":
                text = f"tool result ({m.name or 'tool'}): {m.content}"
            else:
                calls = "; ".join(f"called {c.name}({c.arguments})" for c in m.tool_calls)
                text = f"{m.role}: {m.content}" + (f" [{calls}]" if calls else "")
            lines.append(truncate_to_tokens(" ".join(text.split()), TRANSCRIPT_TURN_TOKENS))
    return lines


@dataclass
class Summary:
    text: str
    results: list[ChatResult] = field(default_factory=list)

    def report(self, model: str) -> dict[str, Any]:
        usage = {"input_tokens": 0, "output_tokens": 0}
        for r in self.results:
            usage["input_tokens"] += r.response.usage.input_tokens
            usage["output_tokens"] += r.response.usage.output_tokens
        costs = [r.cost_usd for r in self.results]
        cost = None if any(c is None for c in costs) else round(sum(costs), 10)
        return {"model": model, "calls": len(self.results), "usage": usage, "cost_usd": cost}


async def summarize(previous: str | None, entries: list[Entry], *, model: str, max_tokens: int,
                    ctx: CallContext) -> Summary:
    """`previous` rewritten to include `entries`, by `model`, in as many calls as its window needs
    (one, unless the turns to fold outgrow the summarizer's own window)."""
    from lib.gateway.chain import ChatCall, complete_chat

    window = window_for([model], max_tokens, ctx.settings)
    system = SUMMARY_PROMPT.format(words=max(20, int(max_tokens * 0.7)))
    summary = Summary(previous or "")
    lines = transcript(entries)
    while lines:
        room = window.input_room - system_tokens(system) - count_tokens(summary.text) - 2 * MESSAGE_OVERHEAD - 20
        batch: list[str] = []
        used = 0
        while lines and (not batch or used + count_tokens(lines[0]) + 1 <= room):
            used += count_tokens(lines[0]) + 1
            batch.append(lines.pop(0))
        prompt = f"Summary so far:\n{summary.text or '(none yet)'}\n\nNew turns:\n" + "\n".join(batch)
        chat = ChatRequest(model="", messages=[Message("user", prompt)], system=system, max_tokens=max_tokens,
                           temperature=0, user=ctx.user_id)
        # the first call counts the request against the rate limit (before anything is spent),
        # the answer's own calls and further summary calls do not count it again
        result = await complete_chat(ChatCall([model], chat), replace(ctx, count_request=not summary.results
                                                                      and ctx.count_request))
        summary.results.append(result)
        summary.text = truncate_to_tokens(result.response.text.strip(), max_tokens)
    return summary
