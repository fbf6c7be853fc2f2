"""Who may call: servers presenting an `API_KEYS` key, and the cron presenting `CRON_SECRET`.

Both arrive as `Authorization: Bearer <token>` (`bearer_token`) and are compared in constant time
(`matching_secret`). With no keys or secret configured a function serves anyone locally, and
refuses to serve in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lib import errors
from lib.config import ApiKey, Settings

if TYPE_CHECKING:
    from lib.web import Request

def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <token>` (headers named in lower case), or None when
    the header is missing, empty or another scheme."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def matching_secret(token: str | None, secrets: Sequence[str]) -> int | None:
    """The index of the secret equal to `token`, or None. Every secret is compared, in constant
    time, so the timing says nothing about which one matched or how much of it."""
    import hmac  # not at the top: it costs a cold start that never checks a secret (health)

    if token is None:
        return None
    sent = token.encode()
    match = None
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(secret.encode(), sent):
            match = index
    return match


def authenticate_api_key(settings: Settings, headers: Mapping[str, str]) -> ApiKey | None:
    """The caller's key; None when no keys are configured (outside production). 401 otherwise."""
    if not settings.api_keys:
        if settings.is_production:
            raise errors.ConfigurationError(
                "API_KEYS is not set on a production deployment; refusing to serve unauthenticated requests")
        return None
    token = bearer_token(headers)
    if token is None:
        raise errors.Unauthorized("missing API key: send Authorization: Bearer <key>", headers={"www-authenticate": "Bearer"})
    index = matching_secret(token, [key.key for key in settings.api_keys])
    if index is None:
        raise errors.Unauthorized("invalid API key", headers={"www-authenticate": "Bearer"})
    return settings.api_keys[index]


def check_cron_secret(request: Request) -> None:
    """Let the reindex cron through when it presents CRON_SECRET; 401 otherwise."""
    secret = request.settings.cron_secret
    if not secret:
        if request.settings.is_production:
            raise errors.ConfigurationError(
                "CRON_SECRET is not set on a production deployment; refusing to run the reindex cron")
        return
    if matching_secret(bearer_token(request.headers), [secret]) is None:
        raise errors.Unauthorized("missing or wrong cron secret: send Authorization: Bearer <CRON_SECRET>",
                                  headers={"www-authenticate": "Bearer"})


def is_admin(request: Request) -> bool:
    """An administrator: today a caller whose API key has no namespace list (an all-access key),
    or anyone on a local deployment without API_KEYS, where every function is open. When callers
    gain explicit roles this becomes `role == "admin"`, here and nowhere else."""
    if request.api_key is None:
        return not request.settings.api_keys and not request.settings.is_production
    return request.api_key.namespaces is None


def require_admin(request: Request) -> None:
    """Refuse (403) a caller who is not an administrator. (No key at all was already a 401.)"""
    if not is_admin(request):
        raise errors.Forbidden("this is for administrators: use an API key without a namespace list",
                               code="admin_required")
