"""Requests per minute per API key and per user, counted in Postgres so every instance agrees.

A fixed one-minute window per subject: one upsert counts the request and returns the count,
and a refused request learns (in `retry-after`) when the window ends.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from lib import errors
from lib.providers.usage import user_of_scope

if TYPE_CHECKING:
    from psycopg import AsyncConnection

_COUNT = """
INSERT INTO rate_limit_windows (subject, window_start, requests)
VALUES (%(subject)s, date_trunc('minute', now()), 1)
ON CONFLICT (subject, window_start) DO UPDATE SET requests = rate_limit_windows.requests + 1
RETURNING requests, extract(epoch FROM window_start + interval '1 minute' - now())
"""
_FORGET_OLD = "DELETE FROM rate_limit_windows WHERE window_start < now() - interval '10 minutes'"


async def check_rate_limit(conn: AsyncConnection, subjects: list[str], requests_per_minute: int) -> None:
    """Count this request for each subject ('key:..', 'user:..'); 429 when one is over the limit."""
    if requests_per_minute <= 0:
        return
    for subject in subjects:
        cur = await conn.execute(_COUNT, {"subject": subject})
        count, seconds_left = await cur.fetchone()
        if count > requests_per_minute:
            wait = max(1, math.ceil(float(seconds_left)))
            who = "this API key" if subject.startswith("key:") or subject == "anonymous" else \
                f"user {user_of_scope(subject)!r}"
            raise errors.RateLimited(
                f"rate limit of {requests_per_minute} requests per minute reached for {who}; "
                f"retry in {wait} s", headers={"retry-after": str(wait)},
                details={"limit_per_minute": requests_per_minute, "retry_after_s": wait})
    if random.random() < 0.02:  # keep the table small without a scheduled job
        await conn.execute(_FORGET_OLD)
