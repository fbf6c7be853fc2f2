"""Who may change prompts and experiments: admins. Reading prompts needs only an authenticated caller.

An admin is a caller whose role is admin (lib/web/auth.py): a key that says so, an API key from
before roles with no namespace list, a token whose role claim says so, and every caller of a local
deployment with nothing configured. A key limited to namespaces belongs to one tenant and may not
change what every tenant runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lib.web import Request


def require_admin(request: Request) -> None:
    """Refuse (403 `admin_required`) a caller who is not an admin."""
    request.require_role("admin")


def actor(request: Request) -> str:
    """Who did it, for the audit columns: the caller's non-secret name."""
    return request.caller
