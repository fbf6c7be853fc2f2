"""Who may change prompts and experiments: admins. Reading prompts needs only an authenticated caller.

Until end-user roles exist this is the one place that decides what an admin is, so it can become
`request.require_role("admin")` in one edit: an API key with no namespace list is an admin, and so
is every caller of a local deployment with no API_KEYS (production refuses to serve without keys).
A key limited to namespaces belongs to one tenant and may not change what every tenant runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lib import errors

if TYPE_CHECKING:
    from lib.web import Request


def require_admin(request: Request) -> None:
    """Refuse (403) a caller who is not an admin."""
    key = request.api_key
    if key is not None and key.namespaces is not None:
        raise errors.Forbidden("this API key is limited to namespaces; changing prompts and experiments "
                               "needs an admin key (one with no namespace list)", code="admin_required")


def actor(request: Request) -> str:
    """Who did it, for the audit columns: the caller's non-secret name."""
    return request.caller
