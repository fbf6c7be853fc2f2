"""The one retry loop for provider calls (chat and embeddings), and what it makes of a failure.

Adapters raise `ProviderError` (lib/providers/exceptions.py) for every provider failure, and this loop
reads its fields only. Retried: timeouts, broken connections, 408, 409, 429, 5xx (Anthropic's 529
too), with exponential backoff and full jitter, honoring `retry-after` / `retry-after-ms` up to
`RETRY_MAX_WAIT_S`. Never retried: other 4xx (bad request, auth, not found), a 429 that says the
quota is exhausted, because asking again changes nothing, and anything that is not a
`ProviderError` (a fault of ours, which another try repeats). A provider's `x-should-retry`
overrides the kind either way. The SDKs' own retries are off (`max_retries=0`), so this loop is
the only one.

    result = await call_with_retries(lambda attempt: embedder.embed(texts),
                                     RetryPolicy.from_settings(settings),
                                     on_failure=record_failed_attempt)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lib import errors
from lib.logs import scrub
from lib.providers.exceptions import ProviderError

T = TypeVar("T")

# Kinds where the same request may well succeed a moment later.
RETRYABLE_KINDS = frozenset({"timeout", "connection", "conflict", "rate_limited", "overloaded",
                             "server_error"})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry one model, and how long to wait between tries."""

    max_retries: int = 2
    max_wait_s: float = 20.0
    base_delay_s: float = 0.25

    @classmethod
    def from_settings(cls, settings: Any) -> RetryPolicy:
        return cls(max_retries=max(0, settings.max_retries), max_wait_s=max(0.0, settings.retry_max_wait_s))

    def backoff_s(self, retry_number: int, retry_after_s: float | None) -> float:
        """Seconds to wait before retry `retry_number` (1-based)."""
        if retry_after_s is not None:
            return min(max(0.0, retry_after_s), self.max_wait_s)
        from random import Random  # not at module top: it costs a cold start ~4 ms, and only a retry needs it

        ceiling = min(self.max_wait_s, self.base_delay_s * (2 ** (retry_number - 1)))
        # full jitter: spreads out instances retrying together; a generator of our own, so the
        # application's global random state is left as it seeded it
        return Random().uniform(0, ceiling)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, in terms the ledger and the client can use."""

    code: str  # rate_limited | server_error | overloaded | timeout | connection | auth | bad_request | ...
    message: str
    status: int | None = None
    retryable: bool = False
    retry_after_s: float | None = None

    def to_api_error(self, model: str = "") -> errors.ApiError:
        """The error a client sees when this was the last failure (after retries and fallbacks)."""
        where = f" from {model}" if model else ""
        if self.code == "timeout":
            return errors.UpstreamTimeout(f"the provider did not answer in time{where}",
                                          code="upstream_timeout")
        detail = f"{self.code}{f' (HTTP {self.status})' if self.status else ''}"
        return errors.UpstreamError(f"the provider failed{where}: {detail}: {self.message[:300]}",
                                    code=f"upstream_{self.code}")


class ProviderCallFailed(Exception):
    """Raised by `call_with_retries` when the last attempt failed; `failure` says how."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(f"{failure.code}: {failure.message}")
        self.failure = failure
        self.attempts = attempts


def classify(exc: BaseException) -> Failure:
    """What kind of failure this is, and whether trying again can help, from the error's fields."""
    if isinstance(exc, ProviderCallFailed):
        return exc.failure
    if not isinstance(exc, ProviderError):
        return Failure("provider_error", scrub(str(exc) or repr(exc)), retryable=False)
    if exc.kind == "quota_exhausted":  # whatever the provider hints: no money, no answer
        return Failure(exc.kind, exc.message, exc.status, retryable=False)
    retryable = exc.kind in RETRYABLE_KINDS if exc.should_retry is None else exc.should_retry
    return Failure(exc.kind, exc.message, exc.status, retryable, exc.retry_after_s)


OnFailure = Callable[[int, Failure, float], Awaitable[None]]


async def call_with_retries(
    call: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    on_failure: OnFailure | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
) -> T:
    """Run `call(attempt)` (attempt counts from 1) until it succeeds or may not be retried.

    `deadline` is a `time.monotonic()` instant after which no new attempt starts (the overall
    timeout). `on_failure(attempt, failure, latency_s)` runs after each failed attempt (the
    usage ledger). Raises `ProviderCallFailed` carrying the last failure; the original
    exception is its `__cause__`.
    """
    import asyncio  # not at module top: ai_execute's cold start would pay for it before any call

    sleep = sleep or asyncio.sleep
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        try:
            return await call(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every fault is classified (and recorded) below
            failure = classify(exc)
            if on_failure is not None:
                await on_failure(attempt, failure, time.monotonic() - started)
            retries_left = attempt <= policy.max_retries
            wait = policy.backoff_s(attempt, failure.retry_after_s)
            told_to_wait_too_long = (failure.retry_after_s or 0) > policy.max_wait_s
            out_of_time = deadline is not None and time.monotonic() + wait >= deadline
            if not failure.retryable or not retries_left or told_to_wait_too_long or out_of_time:
                raise ProviderCallFailed(failure, attempt) from exc
            await sleep(wait)
