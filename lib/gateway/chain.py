"""Run a chat on a chain of models: rate limits, budgets and the cache first, then each model with
retries, falling back to the next model when one fails; every attempt goes to the usage ledger.

    result = await complete_chat(ChatCall(["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"], chat), ctx)
    async for event in stream_chat(call, ctx): ...   # TextDelta, ToolCall*, StreamFinished,
                                                     # then ChatCompleted or StreamFailed

Before the first event of `stream_chat` nothing has been sent, so every refusal or failure is
raised as an `ApiError` (the endpoint answers with JSON and the right status). Once the first
token is out, the stream is committed to that model: a later failure becomes a `StreamFailed`
event, is recorded, and is not retried.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lib import errors
from lib.config import Settings
from lib.providers import ProviderSpec, adapter_for, resolve_model, target_for
from lib.providers.exceptions import ProviderError
from lib.providers.retry import Failure, ProviderCallFailed, RetryPolicy, call_with_retries, classify
from lib.providers.types import (
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
from lib.providers.usage import UsageRecord, record_usage


@dataclass
class CallContext:
    """Who is asking and under which settings. `byok_keys` (provider -> key) are the caller's own
    keys: used for the call, never logged, stored or cached."""

    settings: Settings
    request_id: str | None = None
    user_id: str | None = None
    caller: str | None = None
    byok_keys: dict[str, str] = field(default_factory=dict, repr=False)
    # False for the later model calls of one request (tool steps, a summary): the request was
    # counted against the rate limit once; budgets are still checked before every call
    count_request: bool = True
    prompt_name: str | None = None  # the stored prompt (lib/prompts) being run, for the ledger
    prompt_version: int | None = None


@dataclass
class ChatCall:
    """What to run: the models in order (the primary, then fallbacks) and the chat itself."""

    models: list[str]
    chat: ChatRequest
    cache: bool | None = None  # None: cache only when temperature is 0


@dataclass
class Attempt:
    """One try of one model, as listed in the response."""

    model: str
    provider: str
    attempt: int
    status: str  # ok | error | skipped | cached
    latency_ms: float = 0.0
    error_code: str | None = None
    http_status: int | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {"model": self.model, "provider": self.provider, "attempt": self.attempt,
                "status": self.status, "latency_ms": round(self.latency_ms, 1)}
        if self.error_code:
            data.update(error_code=self.error_code, http_status=self.http_status, message=self.message)
        return data


@dataclass
class ChatResult:
    """The answer and what it took: the model that served it, cost, latency, every attempt."""

    response: ChatResponse
    model: str  # provider/model that answered
    provider: str
    cost_usd: float | None
    latency_ms: float
    attempts: list[Attempt]
    cached: bool = False

    def as_dict(self) -> dict[str, Any]:
        r = self.response
        message: dict[str, Any] = {"role": "assistant", "content": r.text}
        if r.tool_calls:
            message["tool_calls"] = [c.as_dict() for c in r.tool_calls]
        return {
            "text": r.text, "message": message, "finish_reason": r.finish_reason,
            "usage": r.usage.as_dict(), "cost_usd": self.cost_usd, "provider": self.provider,
            "model": self.model, "served_model": r.model or self.model.split("/", 1)[1],
            "latency_ms": round(self.latency_ms, 1), "cached": self.cached,
            "attempts": [a.as_dict() for a in self.attempts],
        }


@dataclass
class ChatCompleted:
    """The last event of a successful stream."""

    result: ChatResult


@dataclass
class StreamFailed:
    """The last event of a stream that broke after its first token."""

    code: str
    message: str


# --- admission: rate limits, budgets, the cache -------------------------------------------------


def _cache_enabled(call: ChatCall, settings: Settings) -> bool:
    if settings.cache_ttl_s <= 0:
        return False
    if call.cache is not None:
        return call.cache
    return call.chat.temperature == 0


def _cache_parts(call: ChatCall, ctx: CallContext) -> dict[str, Any]:

    chat = asdict(call.chat)
    chat.pop("model", None)
    chat.pop("user", None)
    # a key of one's own changes who pays, not the answer; the caller scopes who may see it
    return {"models": call.models, "chat": chat, "caller": ctx.caller or "anonymous"}


async def _admit(call: ChatCall, ctx: CallContext) -> tuple[str | None, ChatResult | None]:
    """Count the request against rate limits, refuse it over budget, look it up in the cache."""
    from lib import db
    from lib.gateway.budgets import budget_limits, check_budgets
    from lib.gateway.cache import cache_key, cached_response
    from lib.gateway.ratelimit import check_rate_limit
    from lib.providers.usage import is_anonymous, user_scope

    settings = ctx.settings
    key = cache_key(_cache_parts(call, ctx)) if _cache_enabled(call, settings) else None
    rate_limited = ctx.count_request and settings.rate_limit_rpm > 0
    if key is None and not rate_limited and not budget_limits(settings, ctx.user_id, ctx.caller):
        return None, None  # nothing to check: no round trip before the provider call
    subjects = [ctx.caller or "anonymous"] + ([user_scope(ctx.caller, ctx.user_id)] if ctx.user_id else [])
    # a signed-in user is their own caller; an anonymous one was counted, by address, at the edge
    subjects = [s for s in dict.fromkeys(subjects) if not is_anonymous(s)]
    async with db.connect(settings) as conn:
        if rate_limited:
            await check_rate_limit(conn, subjects, settings.rate_limit_rpm)
        await check_budgets(conn, settings, ctx.user_id, ctx.caller)
        stored = await cached_response(conn, key) if key else None
    if stored is None:
        return key, None
    response = ChatResponse(
        text=stored["text"], tool_calls=[ToolCall(**c) for c in stored["tool_calls"]],
        finish_reason=stored["finish_reason"], usage=Usage(), model=stored["served_model"])
    result = ChatResult(response, stored["model"], stored["provider"], 0.0, 0.0,
                        [Attempt(stored["model"], stored["provider"], 1, "cached")], cached=True)
    await record_usage(UsageRecord(provider=stored["provider"], model=stored["model"], status="cached",
                                   cache_hit=True, cost_usd=0.0, latency_ms=0.0, **_who(ctx)),
                       settings=settings)
    return key, result


async def _remember(key: str | None, result: ChatResult, settings: Settings) -> None:
    from lib import db
    from lib.gateway.cache import store_response
    from lib.logs import log

    if key is None:
        return
    r = result.response
    stored = {"text": r.text, "tool_calls": [vars(c) for c in r.tool_calls], "finish_reason": r.finish_reason,
              "served_model": r.model, "model": result.model, "provider": result.provider}
    try:
        async with db.connect(settings) as conn:
            await store_response(conn, key, result.model, stored, settings.cache_ttl_s)
    except errors.ApiError as exc:  # a cache that cannot be written is not the caller's problem
        log("warning", "response_cache_write_failed", detail=exc.message)


# --- the plan: which models, with which keys ------------------------------------------------------


def _who(ctx: CallContext) -> dict[str, Any]:
    return {"request_id": ctx.request_id, "user_id": ctx.user_id, "caller": ctx.caller,
            "prompt_name": ctx.prompt_name, "prompt_version": ctx.prompt_version}


def _plan(call: ChatCall) -> list[tuple[str, ProviderSpec, str]]:
    plan = []
    for i, name in enumerate(call.models):
        spec, model = resolve_model(name, "model" if i == 0 else f"fallbacks.{i - 1}")
        plan.append((f"{spec.name}/{model}", spec, model))
    return plan


def _failed(name: str, spec: ProviderSpec, attempt: int, failure: Failure, latency_s: float) -> Attempt:
    return Attempt(name, spec.name, attempt, "error", latency_s * 1000, failure.code, failure.status,
                   failure.message[:300])


def _final_error(last: tuple[str, Failure] | None, config_error: errors.ApiError | None,
                 attempts: list[Attempt], timed_out: bool) -> errors.ApiError:
    if last is not None:
        name, failure = last
        error = failure.to_api_error(name)
    elif config_error is not None:
        error = config_error
    else:
        error = errors.UpstreamTimeout("the overall timeout ran out before any model answered")
    if timed_out and last is not None and last[1].code != "timeout":
        error.message += " (the overall timeout ran out before the next fallback)"
    error.details = {"attempts": [a.as_dict() for a in attempts]}
    return error


class _Runner:
    """What one call shares across its attempts: the clock, the ledger and the attempt list."""

    def __init__(self, call: ChatCall, ctx: CallContext, streamed: bool) -> None:
        from lib.providers.pricing import load_prices

        # a broken PRICING_FILE / PRICING_OVERRIDES is a 503 now, not after the provider was paid
        load_prices(ctx.settings.pricing_file, ctx.settings.pricing_overrides)
        self.call, self.ctx, self.streamed = call, ctx, streamed
        self.started = time.monotonic()
        self.deadline = self.started + ctx.settings.total_timeout_s
        self.policy = RetryPolicy.from_settings(ctx.settings)
        self.attempts: list[Attempt] = []
        self.last: tuple[str, Failure] | None = None
        self.config_error: errors.ApiError | None = None
        self.timed_out = False

    def target(self, spec: ProviderSpec, model: str) -> Target | None:
        try:
            return target_for(spec, model, self.ctx.settings, timeout_s=self.ctx.settings.request_timeout_s,
                              byok_key=self.ctx.byok_keys.get(spec.name))
        except errors.ConfigurationError as exc:
            self.attempts.append(Attempt(f"{spec.name}/{model}", spec.name, 0, "skipped", 0.0, exc.code,
                                         None, exc.message))
            self.config_error = exc
            return None

    def attempt_timeout(self, target: Target) -> float:
        return max(0.001, min(target.timeout_s, self.deadline - time.monotonic()))

    @asynccontextmanager
    async def time_limit(self, target: Target) -> AsyncIterator[None]:
        """The attempt's deadline (its own timeout, or the overall one if sooner); running out of it
        is the provider timing out, so it is raised as one."""
        import asyncio  # not at module top: a cold start that never calls a provider skips it

        seconds = self.attempt_timeout(target)
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError as exc:
            raise ProviderError("timeout", f"no answer within {seconds:.1f} s",
                                provider=target.provider) from exc

    def out_of_time(self) -> bool:
        self.timed_out = time.monotonic() >= self.deadline
        return self.timed_out

    def on_failure(self, name: str, spec: ProviderSpec):
        async def record(attempt: int, failure: Failure, latency_s: float) -> None:
            from lib.logs import log

            self.attempts.append(_failed(name, spec, attempt, failure, latency_s))
            self.last = (name, failure)
            log("warning", "provider_attempt_failed", request_id=self.ctx.request_id, model=name,
                attempt=attempt, code=failure.code, http_status=failure.status,
                retryable=failure.retryable, detail=failure.message[:500])
            await record_usage(UsageRecord(
                provider=spec.name, model=name, status="error", attempt=attempt, error_code=failure.code,
                http_status=failure.status, latency_ms=latency_s * 1000, streamed=self.streamed,
                **_who(self.ctx)), settings=self.ctx.settings)

        return record

    async def succeeded(self, name: str, spec: ProviderSpec, attempt: int, response: ChatResponse,
                        latency_s: float) -> ChatResult:
        from lib.providers.pricing import cost_usd

        settings = self.ctx.settings
        reported = response.usage.input_tokens or response.usage.output_tokens
        # a server that reports no usage (some compatible servers, in streams) has an unknown cost
        cost = cost_usd(name, response.usage, settings, response.model) if reported else None
        self.attempts.append(Attempt(name, spec.name, attempt, "ok", latency_s * 1000))
        u = response.usage
        await record_usage(UsageRecord(
            provider=spec.name, model=name, status="ok", attempt=attempt, input_tokens=u.input_tokens,
            output_tokens=u.output_tokens, cached_tokens=u.cached_tokens, cost_usd=cost,
            latency_ms=latency_s * 1000, streamed=self.streamed, **_who(self.ctx)), settings=settings)
        return ChatResult(response, name, spec.name, cost, (time.monotonic() - self.started) * 1000,
                          self.attempts)

    def error(self) -> errors.ApiError:
        return _final_error(self.last, self.config_error, self.attempts, self.timed_out)


class _Attempts:
    """Tries of one model: each call is one attempt, bounded by the per-attempt and overall timeouts."""

    def __init__(self, run: _Runner, adapter: Any, chat: ChatRequest, target: Target) -> None:
        self.run, self.adapter, self.chat, self.target = run, adapter, chat, target
        self.attempt, self.started = 0, 0.0

    async def complete(self, attempt: int) -> tuple[ChatResponse, float]:
        self.attempt, self.started = attempt, time.monotonic()
        async with self.run.time_limit(self.target):
            response = await self.adapter.complete(self.chat, self.target)
        return response, time.monotonic() - self.started

    async def open_stream(self, attempt: int) -> tuple[Any, StreamEvent]:
        """Open the stream and wait for its first event: until then, a failure can be retried."""
        self.attempt, self.started = attempt, time.monotonic()
        events = self.adapter.stream(self.chat, self.target)
        try:
            async with self.run.time_limit(self.target):
                return events, await anext(events)
        except BaseException:
            await events.aclose()
            raise


# --- the two ways to call -----------------------------------------------------------------------


def _each_model(run: _Runner, call: ChatCall, plan: list) -> Iterator[tuple[str, ProviderSpec, Target, _Attempts]]:
    """The models of the chain still worth trying, in order, each with its attempt state; stops
    when the overall deadline has passed and skips models with no usable credentials."""
    for name, spec, model in plan:
        if run.out_of_time():
            return
        target = run.target(spec, model)
        if target is None:
            continue
        yield name, spec, target, _Attempts(run, adapter_for(spec), replace(call.chat, model=model), target)


async def complete_chat(call: ChatCall, ctx: CallContext) -> ChatResult:
    """The whole answer at once, from the first model in the chain that gives one."""
    plan = _plan(call)
    key, hit = await _admit(call, ctx)
    if hit is not None:
        return hit
    run = _Runner(call, ctx, streamed=False)
    for name, spec, _target, one in _each_model(run, call, plan):
        try:
            response, latency_s = await call_with_retries(one.complete, run.policy, deadline=run.deadline,
                                                          on_failure=run.on_failure(name, spec))
        except ProviderCallFailed:
            continue
        result = await run.succeeded(name, spec, one.attempt, response, latency_s)
        await _remember(key, result, ctx.settings)
        return result
    raise run.error()


async def stream_chat(call: ChatCall, ctx: CallContext) -> AsyncIterator[Any]:
    """Events as the provider produces them; see the module docstring for the failure rules."""
    plan = _plan(call)
    key, hit = await _admit(call, ctx)
    if hit is not None:
        for event in replay(hit.response):
            yield event
        yield ChatCompleted(hit)
        return
    run = _Runner(call, ctx, streamed=True)
    for name, spec, target, one in _each_model(run, call, plan):
        try:
            events, first = await call_with_retries(one.open_stream, run.policy, deadline=run.deadline,
                                                    on_failure=run.on_failure(name, spec))
        except ProviderCallFailed:
            continue
        # Committed: the first token goes out now, and this model finishes the answer or fails it.
        relay = _relay(run, name, spec, target, events, first, one.attempt, one.started, key)
        try:
            async for event in relay:
                yield event
        finally:
            # when our caller closes us (the client went away), close the relay now so its ledger
            # row is written before the request ends, not whenever the generator is collected
            await relay.aclose()
        return
    raise run.error()


async def _relay(run: _Runner, name: str, spec: ProviderSpec, target: Target, events: Any,
                 first: StreamEvent, attempt: int, t0: float, key: str | None) -> AsyncIterator[Any]:
    text: list[str] = []
    calls: list[ToolCall] = []
    finished: StreamFinished | None = None
    outcome = "client_closed"
    try:
        event: StreamEvent = first
        while True:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallReady):
                calls.append(event.call)
            elif isinstance(event, StreamFinished):
                finished = event
                break
            yield event
            try:
                async with run.time_limit(target):
                    event = await anext(events)
            except StopAsyncIteration:
                raise ProviderError("connection", "the provider's stream ended before it finished",
                                    provider=target.provider) from None
        outcome = "ok"
    except GeneratorExit:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the stream and the ledger
        failure = classify(exc)
        outcome = failure.code
        await run.on_failure(name, spec)(attempt, failure, time.monotonic() - t0)
        yield StreamFailed(failure.code, f"the provider's stream broke off ({failure.code}): "
                                         f"{failure.message[:300]}")
        return
    finally:
        await events.aclose()
        if outcome == "client_closed":  # the caller went away mid-answer; the tokens were still spent
            await record_usage(UsageRecord(
                provider=spec.name, model=name, status="error", attempt=attempt, error_code="client_closed",
                latency_ms=(time.monotonic() - t0) * 1000, streamed=True, **_who(run.ctx)),
                settings=run.ctx.settings)
    assert finished is not None
    response = ChatResponse("".join(text), calls, finished.finish_reason, finished.usage, finished.model)
    result = await run.succeeded(name, spec, attempt, response, time.monotonic() - t0)
    yield finished
    await _remember(key, result, run.ctx.settings)
    yield ChatCompleted(result)


def replay(response: ChatResponse) -> list[StreamEvent]:
    """A stored answer as the events a live stream would have produced."""
    events: list[StreamEvent] = [TextDelta(response.text)] if response.text else []
    for call in response.tool_calls:
        events += [ToolCallStarted(call.id, call.name), ToolCallReady(call)]
    events.append(StreamFinished(response.finish_reason, response.usage, response.model))
    return events
