"""What `GET /api/health` answers (200 when the database answers, 503 otherwise, same shape).

A documentation model (see lib/shapes.py): check_health returns a plain dict, and the tests
hold real answers to this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lib.shapes import Shape


class AnonymousAccess(Shape):
    role: Literal["reader", "writer"]
    namespaces: list[str]
    rate_limit_rpm: int = Field(description="per client IP address; 0: no limit")


class IdentityReport(Shape):
    """How callers are identified here: names only, never a key or secret (docs/auth.md)."""

    api_keys: int = Field(description="how many API_KEYS are configured")
    end_user_tokens: list[Literal["jwks", "jwt_secret", "authjs_session"]]
    issuer: str | None = Field(description="AUTH_ISSUER")
    audience: list[str]
    session_cookies: list[str] = Field(description="cookies read for a signed-in user")
    user_claim: str
    default_role: Literal["reader", "writer", "admin"]
    anonymous: AnonymousAccess | None = Field(description="ANONYMOUS_ROLE, when callers without credentials "
                                                          "are served")


class HealthReport(Shape):
    status: Literal["ok", "error"]
    version: str = Field(description="the bundle's version")
    python: str
    environment: str = Field(description="VERCEL_ENV (production, preview, development), vercel, or local")
    database: Literal["ok", "unavailable"]
    postgres_version: str | None = None
    pgvector_version: str | None = None
    database_latency_ms: float | None = None
    reason: str | None = Field(None, description="why the database is unavailable, when it is a setting")
    auth: str = Field(description="the configured ways of calling joined by + (api_keys, jwks, jwt_secret, "
                                  "authjs_session), anonymous only, open (local), or what is missing in production")
    identity: IdentityReport
