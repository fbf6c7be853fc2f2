"""How a provider call failed, as one type: each adapter maps its SDK's exceptions into it at its
seam, so nothing past an adapter knows which SDK (or which HTTP library) made the call.

    ProviderError(kind, message, provider, status, retry_after_s, should_retry), by `kind`
    (the usage ledger's error_code):
    ├── timeout                    no answer in time: the SDK's timeout, the attempt's deadline, 408
    ├── connection                 no connection, or it broke mid-answer (a stream cut off)
    ├── rate_limited (429)         slow down; `retry_after_s` says for how long when the provider does
    ├── quota_exhausted (429)      a 429 whose error code says the quota or the money is spent
    ├── overloaded (529)           the provider is overloaded (Anthropic's 529)
    ├── server_error (5xx)         any other 5xx
    ├── conflict (409)             the provider saw a conflicting request
    ├── auth (401)                 the key is missing, wrong or revoked
    ├── permission_denied (403)    the key may not use this model or feature
    ├── not_found (404)            no such model or route
    ├── too_large (413)            the request is over the provider's size limit
    ├── bad_request (400, 422, any other status)  the provider refused the request as written
    └── provider_error             the SDK failed without a status (an error event inside a stream)

Each adapter wraps its SDK calls, and the reading of its streams, in `with map_exceptions(provider):`,
its own function that checks its SDK's exception classes with isinstance and hands statuses to
`from_status`. `lib/providers/retry.py` decides what to retry from these fields alone, and a
client sees the last failure as `lib.errors.UpstreamError` (502) or `UpstreamTimeout` (504).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Literal

from lib.logs import scrub

Kind = Literal[
    "timeout", "connection", "rate_limited", "quota_exhausted", "overloaded", "server_error", "conflict",
    "auth", "permission_denied", "not_found", "too_large", "bad_request", "provider_error",
]

_KIND_BY_STATUS: dict[int, Kind] = {
    400: "bad_request", 401: "auth", 403: "permission_denied", 404: "not_found", 408: "timeout",
    409: "conflict", 413: "too_large", 422: "bad_request", 429: "rate_limited", 529: "overloaded"}
# Error codes that come with a 429 but mean "no more money", not "slow down".
_QUOTA_CODES = ("insufficient_quota", "quota_exceeded", "billing_hard_limit_reached", "billing")


class ProviderError(Exception):
    """Raised by an adapter for every failure of a provider call, whatever its SDK raised."""

    def __init__(self, kind: Kind, message: str, *, provider: str = "", status: int | None = None,
                 retry_after_s: float | None = None, should_retry: bool | None = None) -> None:
        self.kind = kind
        self.message = scrub(message)  # it reaches the ledger, the log and the client's `attempts`
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s
        self.should_retry = should_retry  # the provider's own `x-should-retry`, when it sent one
        super().__init__(f"{provider or 'provider'}: {kind}{f' (HTTP {status})' if status else ''}: "
                         f"{self.message}")


Translate = Callable[[str, Exception], ProviderError | None]


@contextmanager
def mapping_exceptions(provider: str, translate: Translate) -> Iterator[None]:
    """Raise what `translate(provider, exc)` makes of an exception; what it returns None for passes.

    The skeleton of every adapter's `map_exceptions`; a `ProviderError` from an inner block
    passes unchanged, and cancellation and generator exits are not exceptions it sees.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        error = translate(provider, exc)
        if error is None:
            raise
        raise error from exc


def from_status(provider: str, status: int, headers: Mapping[str, str], body: Any,
                message: str) -> ProviderError:
    """The error for an HTTP error answer: its kind from the status and the body's error code,
    `retry-after-ms` / `retry-after`, and `x-should-retry`. `message` is used when the body has none."""
    text = _body_message(body) or message
    hint = {"true": True, "false": False}.get(str(headers.get("x-should-retry", "")).lower())
    if status == 429 and any(code in _error_code(body) for code in _QUOTA_CODES):
        kind: Kind = "quota_exhausted"
    else:
        kind = _KIND_BY_STATUS.get(status) or ("server_error" if status >= 500 else "bad_request")
    return ProviderError(kind, text, provider=provider, status=status,
                         retry_after_s=parse_retry_after(headers), should_retry=hint)


def from_body(provider: str, body: Any, message: str) -> ProviderError:
    """An error with no status, such as an error event inside a stream."""
    return ProviderError("provider_error", _body_message(body) or message, provider=provider)


def from_sdk(provider: str, exc: Exception, sdk: ModuleType, http: ModuleType | None = None) -> ProviderError | None:
    """An exception of the `openai`, `anthropic` or `groq` SDK. The three are generated from one
    template and share their exception classes; `http` is the HTTP library an SDK lets through
    unwrapped while a stream is read (None when it wraps everything itself)."""
    if isinstance(exc, sdk.APIStatusError):  # for Anthropic, an `error` event in a stream too
        return from_status(provider, exc.status_code, exc.response.headers, exc.body, exc.message)
    if isinstance(exc, sdk.APITimeoutError):  # before its base class, APIConnectionError
        return ProviderError("timeout", exc.message, provider=provider)
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderError("connection", exc.message, provider=provider)
    if isinstance(exc, sdk.APIError):  # an error event inside a stream
        return from_body(provider, exc.body, exc.message)
    return from_transport(provider, exc, http) if http is not None else None


def from_transport(provider: str, exc: Exception, http: ModuleType) -> ProviderError | None:
    """Timeouts and broken connections of an httpx-style library (`httpx`, `httpx2`), which some SDKs
    let through unwrapped while a stream is read; None for anything else."""
    if isinstance(exc, http.TimeoutException):
        return ProviderError("timeout", str(exc) or "timed out", provider=provider)
    if isinstance(exc, (http.RequestError, http.StreamError)):
        return ProviderError("connection", str(exc) or "the connection broke", provider=provider)
    return None


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` (seconds or an HTTP date)."""
    try:
        raw_ms = headers.get("retry-after-ms")
        if raw_ms:
            return max(0.0, float(raw_ms) / 1000)
        raw = headers.get("retry-after")
    except (AttributeError, ValueError):
        return None
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    import email.utils  # HTTP dates are rare, and this import costs a cold start ~8 ms

    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _error_object(body: Any) -> dict[str, Any]:
    """`{"error": {...}}` or the inner object itself (the openai SDK keeps only the inner one)."""
    if not isinstance(body, dict):
        return {}
    inner = body.get("error", body)
    return inner if isinstance(inner, dict) else {}


def _error_code(body: Any) -> str:
    """The provider's own error code and type, lower-cased ('insufficient_quota rate_limit_error')."""
    error = _error_object(body)
    return " ".join(str(error.get(key) or "") for key in ("code", "type")).lower()


def _body_message(body: Any) -> str:
    return str(_error_object(body).get("message") or "")
