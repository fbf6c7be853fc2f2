"""The errors a client can see, and the status each one answers with.

    ApiError                      any error with a status, a stable code and a safe message
    ├── BadRequest (400)          malformed JSON, a body that cannot be read
    ├── Unauthorized (401)        missing or wrong API key, user token or cron secret
    ├── Forbidden (403)           a caller outside its namespaces or role; a cookie from a foreign page
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
    """Raised when the API key, the user's token (or the cron secret) is missing or wrong."""

    status, code = 401, "unauthorized"


class PaymentRequired(ApiError):
    """Raised before any provider call when a daily or monthly budget is spent."""

    status, code = 402, "budget_exceeded"


class Forbidden(ApiError):
    """Raised when a verified caller goes beyond its namespaces or role, or a cookie comes from elsewhere."""

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


# Every `code` a client can see, with its status and when it is sent. The OpenAPI document lists
# them per status (and TypeScript gets them as a union); a test fails when lib/ raises a code that
# is not here, so a new code is documented in the same change that sends it.
CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "the body cannot be read (the client went away mid-body)"),
    "invalid_json": (400, "the body is not a JSON object, or is nested too deeply"),
    "invalid_multipart": (400, "a multipart/form-data body without a boundary, or malformed"),
    "invalid_text": (400, "text holds a NUL character or a lone UTF-16 surrogate, which cannot be stored"),
    "cors_method_not_allowed": (400, "a CORS preflight for a method the function does not serve"),
    "cors_header_not_allowed": (400, "a CORS preflight for a request header browsers may not send here"),
    "unauthorized": (401, "no credentials (API key, user token or session cookie), a wrong key, or a wrong "
                          "cron secret"),
    "invalid_token": (401, "a user token that is malformed, unsigned (alg none), signed with a key or algorithm "
                           "not accepted here, or whose signature does not verify; the message says which"),
    "token_expired": (401, "the user token's exp has passed (30 s of clock skew allowed): get a fresh one"),
    "token_not_yet_valid": (401, "the user token's nbf or iat is in the future"),
    "invalid_issuer": (401, "the user token's iss is not AUTH_ISSUER"),
    "invalid_audience": (401, "the user token's aud names none of AUTH_AUDIENCE"),
    "budget_exceeded": (402, "a daily or monthly budget is spent; checked before any provider call"),
    "forbidden": (403, "a verified caller (key or token) used outside its namespaces"),
    "origin_not_allowed": (403, "the Origin is not in ALLOWED_ORIGINS (for a session cookie that changes state: "
                                "neither this site nor listed there)"),
    "origin_required": (403, "a state-changing request authenticated by a session cookie carries no Origin"),
    "writer_required": (403, "the caller's role is reader; uploading, listing and deleting documents need writer"),
    "admin_required": (403, "the caller's role is below admin, which managing prompts and experiments and "
                            "running the reindex by hand need"),
    "user_mismatch": (403, "the body names a user other than the signed-in one, or an anonymous caller names one"),
    "byok_disabled": (403, "a provider key was sent in a header while ALLOW_BYOK is off"),
    "key_not_allowed": (403, "an S3 key that was not issued for this namespace"),
    "not_found": (404, "no such function, or no such conversation for this caller"),
    "document_not_found": (404, "no document with that id or source in the namespace"),
    "blob_not_found": (404, "nothing was uploaded to the presigned URL under that key"),
    "conversation_not_found": (404, "no stored chat with that id for this caller in the namespace"),
    "method_not_allowed": (405, "the function does not serve this method; the allow header lists those it does"),
    "conflict": (409, "the request conflicts with the current state"),
    "payload_too_large": (413, "a body over MAX_BODY_BYTES or a document over MAX_DOCUMENT_BYTES"),
    "unsupported_media_type": (415, "a request content type the function does not take"),
    "unsupported_document_type": (415, "a document type we cannot read (or a binary file sent as text)"),
    "validation_error": (422, "well-formed but wrong: `details` lists each field and what is wrong with it"),
    "context_too_long": (422, "the conversation's newest turn alone does not fit the model's context window"),
    "empty_document": (422, "the document has no text (a scanned PDF needs OCR, which we do not do)"),
    "corrupt_document": (422, "the file is not a readable document of its type"),
    "encrypted_document": (422, "the PDF is encrypted with a password"),
    "rate_limited": (429, "over RATE_LIMIT_RPM (or ANONYMOUS_RATE_LIMIT_RPM per address); the retry-after "
                          "header says when to come back"),
    "internal_error": (500, "a fault of ours; the server log has the detail under the request id"),
    "upstream_error": (502, "a provider failed after its retries and every fallback"),
    "upstream_connection": (502, "the provider could not be reached, or broke off"),
    "upstream_rate_limited": (502, "the provider kept answering 429 through every retry"),
    "upstream_quota_exhausted": (502, "the provider says the account's quota or money is spent"),
    "upstream_overloaded": (502, "the provider is overloaded (Anthropic's 529)"),
    "upstream_server_error": (502, "the provider answered 5xx through every retry"),
    "upstream_conflict": (502, "the provider answered 409"),
    "upstream_auth": (502, "the provider refused our key"),
    "upstream_permission_denied": (502, "the key may not use this model or feature"),
    "upstream_not_found": (502, "the provider has no such model"),
    "upstream_too_large": (502, "the request is over the provider's size limit"),
    "upstream_bad_request": (502, "the provider refused the request as written"),
    "upstream_provider_error": (502, "the provider's SDK failed without a status"),
    "configuration_error": (503, "the deployment lacks something it needs (a setting that does not parse, "
                                 "DATABASE_URL on Vercel, API_KEYS or an end-user identity or CRON_SECRET in production)"),
    "provider_not_configured": (503, "no model in the chain has its provider's key (or base URL)"),
    "s3_not_configured": (503, "a presigned upload was asked for but S3_BUCKET is not set"),
    "model_not_installed": (503, "local/all-minilm-l6-v2 was asked for but its optional packages are not installed"),
    "service_unavailable": (503, "the database or another dependency cannot be reached"),
    "jwks_unavailable": (503, "the identity provider's signing keys (AUTH_JWKS_URL) could not be fetched"),
    "database_busy": (503, "every database connection is in use, or a lock wait ran out; retry-after says "
                           "when to try again"),
    "upstream_timeout": (504, "the provider did not answer in time"),
    "database_timeout": (504, "a database statement ran past its time limit"),
}
