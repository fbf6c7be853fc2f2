"""The one retry loop for provider calls (chat and embeddings), and how a failure is classified.

Retried: 408, 409, 429, 5xx (including Anthropic's 529) and connection errors or timeouts, with
exponential backoff and full jitter, honoring `retry-after` / `retry-after-ms` up to
`RETRY_MAX_WAIT_S`. Never retried: other 4xx (bad request, auth, not found) and a 429 that says
the quota is exhausted, because asking again changes nothing. The SDKs' own retries are off
(`max_retries=0`), so this loop is the only one.

Errors are classified by duck typing (`status_code`, `response.headers`, `body`, class names),
so this module imports no provider SDK and works for openai, anthropic, groq and httpx errors.

    result = await call_with_retries(lambda attempt: client.embeddings.create(...),
                                     RetryPolicy.from_settings(settings),
                                     on_failure=record_failed_attempt)
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lib import errors
from lib.providers.exceptions import parse_retry_after

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# Error codes that come with a 429 but mean "no more money", not "slow down".
_QUOTA_CODES = ("insufficient_quota", "quota_exceeded", "billing_hard_limit_reached", "billing")
_CONNECTION_CLASSES = frozenset({
    "APIConnectionError", "TransportError", "NetworkError", "ConnectError", "ReadError",
    "WriteError", "RemoteProtocolError", "LocalProtocolError", "ProtocolError", "CloseError",
    "IncompleteRead", "ClientDisconnected", "RequestError", "StreamError",
})
_TIMEOUT_CLASSES = frozenset({
    "APITimeoutError", "TimeoutException", "ConnectTimeout", "ReadTimeout", "WriteTimeout",
    "PoolTimeout", "TimeoutError",
})


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
        import random

        ceiling = min(self.max_wait_s, self.base_delay_s * (2 ** (retry_number - 1)))
        return random.uniform(0, ceiling)  # full jitter: spreads out instances retrying together


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


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _headers(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    return getattr(response, "headers", None) or {}


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _error_code(exc: BaseException) -> str:
    """The provider's own error code or type, lower-cased ('insufficient_quota', 'rate_limit_error')."""
    parts = [str(getattr(exc, "code", "") or ""), str(getattr(exc, "type", "") or "")]
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            parts += [str(inner.get("code") or ""), str(inner.get("type") or "")]
    return " ".join(p for p in parts if p).lower()


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(exc) or type(exc).__name__


def classify(exc: BaseException) -> Failure:
    """What kind of failure this exception is, and whether trying again can help."""
    if isinstance(exc, ProviderCallFailed):
        return exc.failure
    names = _class_names(exc)
    status = _status(exc)
    message = _message(exc)
    if status is None:
        if names & _TIMEOUT_CLASSES or isinstance(exc, TimeoutError):
            return Failure("timeout", message or "timed out", retryable=True)
        if names & _CONNECTION_CLASSES or isinstance(exc, ConnectionError):
            return Failure("connection", message, retryable=True)
        return Failure("provider_error", message, retryable=False)
    retry_after = parse_retry_after(_headers(exc))
    # Providers may force the decision either way with `x-should-retry`.
    should_retry = str(_headers(exc).get("x-should-retry", "")).lower()
    code = _error_code(exc)
    if status == 429 and any(q in code for q in _QUOTA_CODES):
        return Failure("quota_exhausted", message, status, retryable=False)
    kind = {400: "bad_request", 401: "auth", 403: "permission_denied", 404: "not_found",
            408: "timeout", 409: "conflict", 413: "too_large", 422: "bad_request",
            429: "rate_limited", 529: "overloaded"}.get(status)
    if kind is None:
        kind = "server_error" if status >= 500 else "bad_request"
    retryable = status in RETRYABLE_STATUSES or status >= 500
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    return Failure(kind, message, status, retryable, retry_after)


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
    import asyncio

    sleep = sleep or asyncio.sleep
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        try:
            return await call(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider fault is classified below
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
