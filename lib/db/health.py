"""The health report: process facts that are cheap to read, and a live database round trip."""

from __future__ import annotations

import sys
import time
from typing import Any

from lib import errors
from lib.config import Settings
from lib.logs import log, scrub

VERSION = "0.1.0"


async def check_health(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {
        "status": "ok",
        "version": VERSION,
        "python": sys.version.split()[0],
        "environment": settings.vercel_env or ("vercel" if settings.on_vercel else "local"),
        "database": "ok",
    }
    import asyncio  # the server has it loaded already; importing it here keeps cold imports cheap

    started = time.perf_counter()
    try:
        from lib import db

        async def probe() -> dict[str, Any]:
            async with db.connect(settings) as conn:
                return await db.server_versions(conn)

        versions = await asyncio.wait_for(probe(), timeout=settings.db_connect_timeout_s + 1)
        report["postgres_version"] = versions["postgres"]
        report["pgvector_version"] = versions["pgvector"]
        report["database_latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    except (errors.ApiError, TimeoutError, OSError) as exc:
        log("warning", "health_database_unavailable", detail=scrub(repr(exc.__cause__ or exc)))
        report["status"] = "error"
        report["database"] = "unavailable"
        if isinstance(exc, errors.ConfigurationError):
            report["reason"] = exc.message
    return report
