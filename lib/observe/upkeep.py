"""The cron's part of observability: prune what is past its retention, then alerts.

Raw request rows and hourly rollups live METRICS_RETENTION_DAYS, daily rollups
METRICS_ROLLUP_RETENTION_DAYS, sent alerts 90 days; 'total' rollups (the Prometheus counters) are
kept. Raw rows go in batches, so a first run after a long pause stays within its time budget and
the next run goes on. Every step is safe to run from several instances at once: deletes of the
same rows wait for each other and find them gone, and alerts are deduplicated in Postgres.
"""

from __future__ import annotations

import time
from typing import Any

from lib.config import Settings
from lib.logs import log, scrub

PRUNE_BATCH = 20_000
PRUNE_TIME_BUDGET_S = 20.0

_PRUNE_REQUESTS = """
DELETE FROM request_log WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM request_log WHERE created_at < now() - make_interval(days => %(days)s) LIMIT %(batch)s))
"""
_PRUNE_ROLLUPS = """
DELETE FROM metrics_rollup
WHERE (grain = 'hour' AND bucket_start < now() - make_interval(days => %(raw_days)s))
   OR (grain = 'day' AND bucket_start < now() - make_interval(days => %(rollup_days)s))
"""
_PRUNE_ALERTS = "DELETE FROM alerts WHERE created_at < now() - interval '90 days'"


async def prune(conn: Any, settings: Settings, *, time_budget_s: float = PRUNE_TIME_BUDGET_S) -> dict[str, int]:
    raw_days = max(1, settings.metrics_retention_days)
    rollup_days = max(raw_days, settings.metrics_rollup_retention_days)
    started, requests = time.monotonic(), 0
    while time.monotonic() - started < time_budget_s:
        cur = await conn.execute(_PRUNE_REQUESTS, {"days": raw_days, "batch": PRUNE_BATCH})
        requests += cur.rowcount
        if cur.rowcount < PRUNE_BATCH:
            break
    cur = await conn.execute(_PRUNE_ROLLUPS, {"raw_days": raw_days, "rollup_days": rollup_days})
    rollups = cur.rowcount
    cur = await conn.execute(_PRUNE_ALERTS)
    return {"requests": requests, "rollups": rollups, "alerts": cur.rowcount}


async def run_upkeep(settings: Settings) -> dict[str, Any]:
    """Prune, then evaluate and deliver alerts. Failures are reported, never raised: the reindex
    cron that calls this has done its own work by then."""
    from lib import db
    from lib.observe.alerts import check_alerts

    report: dict[str, Any] = {}
    try:
        async with db.connect(settings) as conn:
            report["pruned"] = await prune(conn, settings)
            report["alerts"] = await check_alerts(conn, settings)
    except Exception as exc:  # noqa: BLE001 - see docstring
        detail = scrub(f"{type(exc).__name__}: {exc}")[:300]
        log("error", "observe_upkeep_failed", detail=detail)
        report["error"] = detail
    return report
