"""Recording every request: its row in `request_log` and its rollups, in one statement.

The edge (lib/web/trace.py) hands over each finished request after its response went out; this
module listens (it registers when imported, which lib/__init__.py does for every process) and
writes with `observe_record()` (migration 070), unless METRICS_ENABLED is off. The write is
bounded by WRITE_TIMEOUT_S; a failure is logged by the edge and never reaches the caller.
"""

from __future__ import annotations

from lib import deadline
from lib.config import Settings, get_settings
from lib.web.trace import RequestRecord, on_request_finished

WRITE_TIMEOUT_S = 2.0  # a slow database must not keep a finished request's coroutine alive for long

RECORD_SQL = """
SELECT observe_record(%(request_id)s, %(function)s, %(method)s, %(status)s, %(error_code)s,
                      %(latency_ms)s, %(ttfb_ms)s, %(caller)s, %(user_id)s, %(namespace)s)
"""


async def record_request(record: RequestRecord, settings: Settings) -> None:
    """Store one finished request and add it to the rollups (one statement)."""
    import asyncio

    from lib import db

    # a request that ran out of time is recorded too (its failure is what operators look for)
    with deadline.at_least(WRITE_TIMEOUT_S):
        async with asyncio.timeout(WRITE_TIMEOUT_S), db.connect(settings) as conn:
            await conn.execute(RECORD_SQL, vars(record))


async def record_finished_request(record: RequestRecord) -> None:
    settings = get_settings()
    if settings.metrics_enabled:
        await record_request(record, settings)


on_request_finished(record_finished_request)
