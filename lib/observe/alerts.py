"""Budget and error-rate alerts, posted once per period to ALERT_WEBHOOK_URL.

The cron evaluates them (see `upkeep.py`):

- budget: global spend of the UTC day (month) against BUDGET_DAILY_USD (BUDGET_MONTHLY_USD), read
  from the same spend counters the budget check reads; one alert per threshold crossed (50%, 80%,
  100%) per day (month). When several thresholds are crossed at once only the highest is sent.
- error rate: the share of the last 60 minutes' requests that failed with a 5xx (or a stream
  the provider broke), over ALERT_ERROR_RATE, with at least ALERT_MIN_REQUESTS requests; at most
  one alert per clock hour.

Once per period holds across any number of concurrent cron runs: an alert is a row whose key
names its kind, threshold and period, inserted with ON CONFLICT DO NOTHING before anything is
sent; delivery claims undelivered rows with FOR UPDATE SKIP LOCKED, posts, and marks them
delivered in the same transaction. A failed post is retried by the next runs for a day.

The body, `{"text": ..., "content": ...}`, is what Slack (`text`) and Discord (`content`)
incoming webhooks read.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from lib.config import Settings
from lib.logs import log, scrub

if TYPE_CHECKING:
    from psycopg import AsyncConnection

BUDGET_THRESHOLDS = (0.5, 0.8, 1.0)
SEND_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 5

_SPEND_SQL = """
SELECT period, spent_usd FROM spend_counters
WHERE scope = 'global' AND ((period = 'day' AND period_start = %(day)s) OR (period = 'month' AND period_start = %(month)s))
"""
_ERROR_RATE_SQL = """
SELECT count(*), count(*) FILTER (WHERE status >= 500) FROM request_log WHERE created_at >= now() - interval '1 hour'
"""
_ERROR_CODES_SQL = """
SELECT coalesce(error_code, 'http_' || status), count(*) FROM request_log
WHERE created_at >= now() - interval '1 hour' AND status >= 500 GROUP BY 1
"""
_INSERT_SQL = """
INSERT INTO alerts (alert_key, kind, threshold, period_start, message, details, suppressed)
VALUES (%(alert_key)s, %(kind)s, %(threshold)s, %(period_start)s, %(message)s, %(details)s, %(suppressed)s)
ON CONFLICT (alert_key) DO NOTHING
RETURNING alert_key
"""
_CLAIM_SQL = """
SELECT alert_key, message FROM alerts
WHERE delivered_at IS NULL AND NOT suppressed AND attempts < %(max_attempts)s
  AND created_at >= now() - interval '1 day'
ORDER BY created_at
FOR UPDATE SKIP LOCKED
"""


@dataclass
class Alert:
    """One alert the current figures call for."""

    key: str
    kind: str
    threshold: float
    period_start: datetime
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    suppressed: bool = False


def budget_alerts(settings: Settings, spent: dict[str, float], today: date) -> list[Alert]:
    """The budget alerts due for the day's and the month's global spend."""
    alerts = []
    for period, limit, start in (("day", settings.budget_daily_usd, today),
                                 ("month", settings.budget_monthly_usd, today.replace(day=1))):
        if not limit or limit <= 0:
            continue
        used = spent.get(period, 0.0)
        crossed = [t for t in BUDGET_THRESHOLDS if used >= t * limit]
        for threshold in crossed:
            name = "daily" if period == "day" else "monthly"
            alerts.append(Alert(
                key=f"budget:{period}:{round(threshold * 100)}:{start.isoformat()}", kind=f"budget_{name}",
                threshold=threshold, period_start=datetime(start.year, start.month, start.day, tzinfo=UTC),
                message=(f"Spend alert: ${used:.2f} spent {'today' if period == 'day' else 'this month'} (UTC), "
                         f"{used / limit:.0%} of the {name} budget of ${limit:g}"
                         + (" — the budget is spent; LLM requests are refused with 402 until it resets."
                            if threshold >= 1.0 else ".")),
                details={"period": period, "spent_usd": round(used, 6), "limit_usd": limit},
                suppressed=threshold != crossed[-1]))
    return alerts


def error_rate_alert(settings: Settings, requests: int, failed: int, codes: dict[str, int],
                     hour: datetime) -> Alert | None:
    """The error-rate alert for this clock hour, when the last 60 minutes call for one."""
    threshold = settings.alert_error_rate
    if threshold is None or requests < max(1, settings.alert_min_requests) or failed / requests <= threshold:
        return None
    top = ", ".join(f"{code} {n}" for code, n in sorted(codes.items(), key=lambda kv: -kv[1])[:5])
    return Alert(
        key=f"error_rate:{threshold:g}:{hour.isoformat()}", kind="error_rate", threshold=threshold,
        period_start=hour,
        message=(f"Error alert: {failed} of the last hour's {requests} requests failed with a server error "
                 f"({failed / requests:.1%}, over the {threshold:.1%} threshold)" + (f"; codes: {top}." if top else ".")),
        details={"requests": requests, "failed": failed, "codes": codes})


async def due_alerts(conn: AsyncConnection, settings: Settings) -> list[Alert]:
    cur = await conn.execute("SELECT now()")
    now = (await cur.fetchone())[0].astimezone(UTC)
    today = now.date()
    cur = await conn.execute(_SPEND_SQL, {"day": today, "month": today.replace(day=1)})
    spent = {period: float(amount) for period, amount in await cur.fetchall()}
    alerts = budget_alerts(settings, spent, today)
    if settings.alert_error_rate is not None:
        cur = await conn.execute(_ERROR_RATE_SQL)
        requests, failed = await cur.fetchone()
        codes: dict[str, int] = {}
        if failed:
            cur = await conn.execute(_ERROR_CODES_SQL)
            codes = dict(await cur.fetchall())
        alert = error_rate_alert(settings, requests, failed, codes, now.replace(minute=0, second=0, microsecond=0))
        if alert is not None:
            alerts.append(alert)
    return alerts


async def check_alerts(conn: AsyncConnection, settings: Settings) -> dict[str, Any]:
    """Record the alerts now due (each once per period) and deliver whatever is undelivered."""
    from psycopg.types.json import Jsonb

    if not settings.alert_webhook_url:
        return {"enabled": False}
    new = []
    for alert in await due_alerts(conn, settings):
        cur = await conn.execute(_INSERT_SQL, {
            "alert_key": alert.key, "kind": alert.kind, "threshold": alert.threshold,
            "period_start": alert.period_start, "message": alert.message, "details": Jsonb(alert.details),
            "suppressed": alert.suppressed})
        if await cur.fetchone() is not None and not alert.suppressed:
            new.append(alert.key)
    sent, failed = await deliver(conn, settings)
    return {"enabled": True, "new": new, "sent": sent, "failed": failed}


async def deliver(conn: AsyncConnection, settings: Settings) -> tuple[list[str], list[str]]:
    """Post every undelivered alert once; rows another run is posting right now are skipped."""
    sent, failed = [], []
    async with conn.transaction():
        cur = await conn.execute(_CLAIM_SQL, {"max_attempts": MAX_ATTEMPTS})
        for key, message in await cur.fetchall():
            try:
                await asyncio.to_thread(post_webhook, settings.alert_webhook_url, message)
            except Exception as exc:  # noqa: BLE001 - kept for the next run, and logged
                failed.append(key)
                error = scrub(f"{type(exc).__name__}: {exc}")[:300]
                log("warning", "alert_delivery_failed", alert=key, detail=error)
                await conn.execute("UPDATE alerts SET attempts = attempts + 1, last_error = %s WHERE alert_key = %s",
                                   (error, key))
                continue
            sent.append(key)
            log("info", "alert_sent", alert=key)
            await conn.execute("UPDATE alerts SET attempts = attempts + 1, delivered_at = now(), last_error = NULL"
                               " WHERE alert_key = %s", (key,))
    return sent, failed


def post_webhook(url: str, message: str) -> None:
    """POST the alert as JSON that Slack and Discord incoming webhooks both accept."""
    import urllib.request

    body = json.dumps({"text": message, "content": message}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"content-type": "application/json", "user-agent": "bundle-alerts"})
    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:  # noqa: S310 - operator's URL
        response.read()
