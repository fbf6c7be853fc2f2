"""What `GET /api/health` answers (200 when the database answers, 503 otherwise, same shape).

A documentation model (see lib/shapes.py): check_health returns a plain dict, and the tests
hold real answers to this.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lib.shapes import Shape


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
    auth: str = Field(description="api_keys, open (local), or what is missing in production")
