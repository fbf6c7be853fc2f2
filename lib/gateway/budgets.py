"""Spend limits: daily and monthly, for everyone together and per user (and daily for anonymous
callers together), checked before any call.

Spend comes from the counters `record_usage` keeps in Postgres, so every instance sees the same
numbers. A request is refused (402) once a limit is reached; requests already in flight can
overshoot a limit by their own cost, since a price is only known after the answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lib import errors
from lib.config import Settings
from lib.providers.usage import is_anonymous, spend_periods, spend_scopes, user_of_scope, user_scope

if TYPE_CHECKING:
    from psycopg import AsyncConnection

_SPENT = """
SELECT scope, period, spent_usd FROM spend_counters
WHERE scope = ANY(%(scopes)s)
  AND ((period = 'day' AND period_start = %(day)s) OR (period = 'month' AND period_start = %(month)s))
"""


def budget_limits(settings: Settings, user_id: str | None,
                  caller: str | None = None) -> dict[tuple[str, str], float]:
    """(scope, period) -> limit in USD, for the limits that are set."""
    limits = {("global", "day"): settings.budget_daily_usd, ("global", "month"): settings.budget_monthly_usd}
    if user_id:
        limits[(user_scope(caller, user_id), "day")] = settings.budget_user_daily_usd
        limits[(user_scope(caller, user_id), "month")] = settings.budget_user_monthly_usd
    if is_anonymous(caller):
        limits[("anonymous", "day")] = settings.budget_anonymous_daily_usd
    return {k: v for k, v in limits.items() if v is not None}


async def check_budgets(conn: AsyncConnection, settings: Settings, user_id: str | None,
                        caller: str | None = None) -> None:
    """Raise 402 when any daily or monthly budget that applies to this request is spent."""
    limits = budget_limits(settings, user_id, caller)
    if not limits:
        return
    periods = dict(spend_periods(datetime.now(UTC)))
    cur = await conn.execute(_SPENT, {"scopes": spend_scopes(user_id, caller), "day": periods["day"],
                                      "month": periods["month"]})
    spent = {(scope, period): float(amount) for scope, period, amount in await cur.fetchall()}
    for (scope, period), limit in limits.items():
        used = spent.get((scope, period), 0.0)
        if used >= limit:
            who = {"global": "the deployment", "anonymous": "anonymous callers"}.get(
                scope, f"user {user_of_scope(scope)!r}")
            resets = "at 00:00 UTC" if period == "day" else "on the 1st of next month (UTC)"
            raise errors.PaymentRequired(
                f"the {'daily' if period == 'day' else 'monthly'} budget of ${limit:g} for {who} is spent "
                f"(${used:.4f} used); it resets {resets}",
                details={"scope": scope if scope in ("global", "anonymous") else "user", "period": period,
                         "limit_usd": limit, "spent_usd": round(used, 6)})
