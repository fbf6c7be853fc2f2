"""Who may read metrics: administrators only, decided in this one place.

Today an administrator is a caller whose API key has no namespace list (an all-access key), or
anyone on a local deployment without API_KEYS (where every function is open). When callers gain
explicit roles, this check becomes `role == "admin"` and nothing else changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lib import errors

if TYPE_CHECKING:
    from lib.web import Request


def is_admin(request: Request) -> bool:
    if request.api_key is None:
        # the endpoint let an unauthenticated request through: only when no keys are configured
        # outside production, so the whole deployment is open anyway
        return not request.settings.api_keys and not request.settings.is_production
    return request.api_key.namespaces is None


def require_admin(request: Request) -> None:
    """Refuse (403) a caller who is not an administrator. (No key at all was already a 401.)"""
    if not is_admin(request):
        raise errors.Forbidden("metrics are for administrators: use an API key without a namespace list",
                               code="admin_required")
