"""The retry loop and the usage ledger, with the SDKs' real exception types as their adapters raise them."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from lib.providers import groq_wire, openai_wire
from lib.providers.exceptions import ProviderError, parse_retry_after
from lib.providers.retry import ProviderCallFailed, RetryPolicy, call_with_retries, classify
from lib.providers.usage import UsageRecord, record_usage

REQ = httpx.Request("POST", "http://provider.test/v1/chat/completions")


def mapped(exc: Exception, adapter=openai_wire) -> ProviderError:
    """`exc` as the adapter raises it, through its `map_exceptions`."""
    with pytest.raises(ProviderError) as info, adapter.map_exceptions("test"):
        raise exc
    return info.value


def status_error(status: int, headers: dict[str, str] | None = None,
                 body: dict | None = None) -> ProviderError:
    response = httpx.Response(status, headers=headers or {}, request=REQ)
    cls = {429: openai.RateLimitError, 401: openai.AuthenticationError,
           400: openai.BadRequestError}.get(status, openai.InternalServerError)
    return mapped(cls(f"status {status}", response=response, body=body))


def test_retryable_statuses_and_connection_errors() -> None:
    for status in (408, 409, 429, 500, 502, 503, 529):
        assert classify(status_error(status)).retryable, status
    for status in (400, 401, 403, 404, 422):
        assert not classify(status_error(status)).retryable, status
    assert classify(mapped(openai.APITimeoutError(request=REQ))).code == "timeout"
    # groq's SDK lets its HTTP library's errors through unwrapped while a stream is read
    assert classify(mapped(httpx.ConnectError("refused"), groq_wire)).retryable
    assert not classify(ValueError("bug")).retryable


def test_quota_exhausted_is_not_retried() -> None:
    failure = classify(status_error(429, body={"error": {"code": "insufficient_quota", "message": "no"}}))
    assert failure.code == "quota_exhausted" and not failure.retryable


def test_decisions_come_from_the_error_fields_alone() -> None:
    assert classify(ProviderError("overloaded", "busy", status=529)).retryable
    assert not classify(ProviderError("auth", "no", status=401)).retryable
    assert not classify(ProviderError("server_error", "x", status=503, should_retry=False)).retryable
    assert classify(ProviderError("bad_request", "x", status=400, should_retry=True)).retryable
    assert not classify(ProviderError("quota_exhausted", "x", status=429, should_retry=True)).retryable
    failure = classify(ProviderError("rate_limited", "slow down", provider="groq", status=429, retry_after_s=2.5))
    assert (failure.code, failure.status, failure.retry_after_s, failure.message) == (
        "rate_limited", 429, 2.5, "slow down")
    assert classify(ValueError("sk-abcdefghijklmnop leaked")).message == "[redacted] leaked"


def test_retry_after_headers() -> None:
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412475.0) == 5.0
    assert parse_retry_after({}) is None


def test_loop_waits_as_told_then_succeeds() -> None:
    waits: list[float] = []
    failures: list[str] = []
    outcomes = [status_error(429, {"retry-after": "1.5"}), status_error(503), "done"]

    async def call(attempt: int) -> str:
        outcome = outcomes[attempt - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def on_failure(attempt, failure, latency):
        failures.append(failure.code)

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    result = asyncio.run(call_with_retries(call, RetryPolicy(max_retries=2, max_wait_s=5),
                                           on_failure=on_failure, sleep=fake_sleep))
    assert result == "done"
    assert failures == ["rate_limited", "server_error"]
    assert waits[0] == 1.5 and 0 <= waits[1] <= 0.5


def test_loop_stops_on_auth_error_and_when_out_of_retries() -> None:
    calls = 0

    async def unauthorized(attempt: int) -> None:
        nonlocal calls
        calls += 1
        raise status_error(401)

    with pytest.raises(ProviderCallFailed) as info:
        asyncio.run(call_with_retries(unauthorized, RetryPolicy(max_retries=3, max_wait_s=0)))
    assert calls == 1 and info.value.failure.code == "auth"

    async def always_500(attempt: int) -> None:
        raise status_error(500)

    with pytest.raises(ProviderCallFailed) as info:
        asyncio.run(call_with_retries(always_500, RetryPolicy(max_retries=2, max_wait_s=0)))
    assert info.value.attempts == 3


def test_retry_after_longer_than_the_cap_gives_up() -> None:
    async def slow_down(attempt: int) -> None:
        raise status_error(429, {"retry-after": "60"})

    with pytest.raises(ProviderCallFailed) as info:
        asyncio.run(call_with_retries(slow_down, RetryPolicy(max_retries=3, max_wait_s=1)))
    assert info.value.attempts == 1


def test_record_usage_writes_the_ledger_and_spend(database: str) -> None:
    import psycopg

    async def write() -> None:
        from lib import db

        await record_usage(UsageRecord(provider="openai", model="gpt-4o-mini", kind="embedding",
                                       input_tokens=10, cost_usd=0.5, user_id="u1", request_id="r1"))
        await record_usage(UsageRecord(provider="openai", model="gpt-4o-mini", status="error",
                                       error_code="rate_limited", http_status=429, attempt=1))
        await db.close_pools()

    asyncio.run(write())
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT kind, status, error_code, cost_usd FROM usage_ledger ORDER BY id").fetchall()
        spend = dict(conn.execute("SELECT scope || ':' || period, spent_usd FROM spend_counters").fetchall())
    assert [(r[0], r[1], r[2]) for r in rows] == [("embedding", "ok", None), ("chat", "error", "rate_limited")]
    assert float(spend["global:day"]) == 0.5 and float(spend["user:anonymous/u1:month"]) == 0.5  # a user is scoped by its caller
