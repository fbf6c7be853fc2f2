"""Requests per minute per subject, counted in Postgres so every instance agrees.

A fixed one-minute window per subject: one upsert counts the request and returns the count. The
edge counts anonymous callers here (`limit_anonymous`, per client address); the gateway counts
keys and users (`lib/gateway/ratelimit.py`) with the same window.
"""

from __future__ import annotations

import math
from random import Random
from typing import TYPE_CHECKING

from lib import errors
from lib.config import Settings

if TYPE_CHECKING:
    from psycopg import AsyncConnection

_COUNT = """
INSERT INTO rate_limit_windows (subject, window_start, requests)
VALUES (%(subject)s, date_trunc('minute', now()), 1)
ON CONFLICT (subject, window_start) DO UPDATE SET requests = rate_limit_windows.requests + 1
RETURNING requests, extract(epoch FROM window_start + interval '1 minute' - now())
"""
_FORGET_OLD = "DELETE FROM rate_limit_windows WHERE window_start < now() - interval '10 minutes'"

# Our own generator: drawing from the global one would change the state an application seeded.
_coin = Random()


async def count_request(conn: AsyncConnection, subject: str) -> tuple[int, int]:
    """Count one request for `subject`: (requests in this minute, whole seconds until the next)."""
    cur = await conn.execute(_COUNT, {"subject": subject})
    count, seconds_left = await cur.fetchone()
    if _coin.random() < 0.02:  # keep the table small without a scheduled job
        await conn.execute(_FORGET_OLD)
    return count, max(1, math.ceil(float(seconds_left)))


async def limit_anonymous(settings: Settings, caller: str) -> None:
    """429 once an anonymous caller's address is over ANONYMOUS_RATE_LIMIT_RPM this minute."""
    limit = settings.anonymous_rate_limit_rpm
    if limit <= 0:
        return
    from lib import db

    async with db.connect(settings) as conn:
        count, wait = await count_request(conn, caller)
    if count > limit:
        raise errors.RateLimited(
            f"rate limit of {limit} requests per minute reached for anonymous callers from this address; "
            f"retry in {wait} s, or sign in", headers={"retry-after": str(wait)},
            details={"limit_per_minute": limit, "retry_after_s": wait})
