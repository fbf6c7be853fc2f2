"""The errors a client can see, and the status each one answers with.

    ApiError                      any error with a status, a stable code and a safe message
    ├── BadRequest (400)          malformed JSON, a body that cannot be read
    ├── Unauthorized (401)        missing or wrong API key or cron secret
    ├── Forbidden (403)           a key used outside its namespaces
    ├── NotFound (404)            a document, key or conversation that does not exist
    ├── MethodNotAllowed (405)    a method the function does not serve
    ├── PaymentRequired (402)     a budget is spent
    ├── PayloadTooLarge (413)     a body or file over the configured limit
    ├── UnsupportedMediaType (415)  a content type or file type we do not take
    ├── ValidationFailed (422)    a well-formed body with bad fields; lists each field
    ├── RateLimited (429)         too many requests for this key or user
    ├── ConfigurationError (503)  the deployment is missing something it needs
    ├── ServiceUnavailable (503)  the database or another dependency cannot be reached
    │   └── DatabaseBusy (503)    every pooled connection stayed in use, or a lock wait ran out
    ├── DatabaseTimeout (504)     a statement ran past the statement timeout
    ├── UpstreamError (502)       a provider failed after retries and fallbacks
    └── UpstreamTimeout (504)     a provider did not answer in time

Anything else raised inside a handler is a 500 `internal_error` whose detail goes to the log only.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error that reaches a client as `{"error": {...}}`."""

    status = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "request_id": request_id}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ApiError):
    """Raised for a body that is not valid JSON or cannot be read."""

    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    """Raised when the API key (or cron secret) is missing or wrong."""

    status, code = 401, "unauthorized"


class PaymentRequired(ApiError):
    """Raised before any provider call when a daily or monthly budget is spent."""

    status, code = 402, "budget_exceeded"


class Forbidden(ApiError):
    """Raised when a valid key is used for a namespace it is not allowed to touch."""

    status, code = 403, "forbidden"


class NotFound(ApiError):
    """Raised when the thing asked for does not exist."""

    status, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    """Raised for an HTTP method the function does not serve."""

    status, code = 405, "method_not_allowed"


class Conflict(ApiError):
    """Raised when a request conflicts with the current state."""

    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    """Raised when a body or file is over the configured limit."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    """Raised for a request content type or a document type we do not take."""

    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    """Raised for a well-formed body whose fields are wrong; `details` lists each field."""

    status, code = 422, "validation_error"


class RateLimited(ApiError):
    """Raised when a key or user is over its requests-per-minute limit."""

    status, code = 429, "rate_limited"


class UpstreamError(ApiError):
    """Raised when a provider fails after its retries and every fallback."""

    status, code = 502, "upstream_error"


class ConfigurationError(ApiError):
    """Raised when the deployment lacks something it needs (a key, a database URL)."""

    status, code = 503, "configuration_error"


class ServiceUnavailable(ApiError):
    """Raised when the database or another dependency cannot be reached."""

    status, code = 503, "service_unavailable"


class DatabaseBusy(ServiceUnavailable):
    """Raised when no pooled connection frees up in time or a lock wait runs out; worth a retry."""

    code = "database_busy"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"retry-after": str(retry_after_s)})


class DatabaseTimeout(ApiError):
    """Raised when a statement runs past the statement timeout and the database cancels it."""

    status, code = 504, "database_timeout"


class UpstreamTimeout(ApiError):
    """Raised when a provider does not answer within the timeout."""

    status, code = 504, "upstream_timeout"


def field_error(field: str, message: str) -> ValidationFailed:
    """A 422 naming one field, shaped like the validation errors the endpoint helper builds."""
    return ValidationFailed(f"{field}: {message}", details=[{"field": field, "message": message}])
