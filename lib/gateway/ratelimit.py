"""Requests per minute per API key and per user, counted in Postgres so every instance agrees.

A fixed one-minute window per subject (`lib/web/ratelimit.py` counts it): a refused request learns
(in `retry-after`) when the window ends. Anonymous callers are counted at the edge instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lib import errors
from lib.providers.usage import user_of_scope
from lib.web.ratelimit import count_request

if TYPE_CHECKING:
    from psycopg import AsyncConnection


async def check_rate_limit(conn: AsyncConnection, subjects: list[str], requests_per_minute: int) -> None:
    """Count this request for each subject ('key:..', 'user:..'); 429 when one is over the limit."""
    if requests_per_minute <= 0:
        return
    for subject in subjects:
        count, wait = await count_request(conn, subject)
        if count > requests_per_minute:
            who = "this API key" if subject.startswith("key:") or subject == "anonymous" else \
                f"user {user_of_scope(subject)!r}"
            raise errors.RateLimited(
                f"rate limit of {requests_per_minute} requests per minute reached for {who}; "
                f"retry in {wait} s", headers={"retry-after": str(wait)},
                details={"limit_per_minute": requests_per_minute, "retry_after_s": wait})
