"""GET /api/metrics as JSON: request, error, latency, token, cost and cache figures per group and
as a time series, read from the rollups (never from months of raw rows).

A window covers whole buckets: 1h and 24h read hourly rollups (the hour that holds `now - window`
through the current hour, so 24h covers 24 to 25 hours), 7d and 30d read daily rollups (UTC days,
so 30d covers 30 to 31 days). Totals and the total series come from the function rollups, where
every request counts exactly once; a request that called two models counts once under each.
Groups are ranked in SQL on summed columns, and only the rows of the groups listed are read with
their histograms, so a grouping with many keys (users) costs one aggregate, not one row per key.
The lists of slowest and failed requests read raw rows of the exact window through indexes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lib.observe.buckets import PERCENTILE_ERROR, Histogram, add_counts, add_sparse, percentiles

if TYPE_CHECKING:
    from psycopg import AsyncConnection

WINDOWS: dict[str, tuple[str, timedelta]] = {
    "1h": ("hour", timedelta(hours=1)),
    "24h": ("hour", timedelta(hours=24)),
    "7d": ("day", timedelta(days=7)),
    "30d": ("day", timedelta(days=30)),
}
GROUPINGS = ("function", "model", "provider", "user", "namespace", "caller")

# The groups to list, ranked on summed columns (`sort=latency` ranks by mean latency), and the
# rollup rows of those groups only, in one statement.
_RANK_BY = {"requests": "sum(requests)", "errors": "sum(client_errors + server_errors)", "cost": "sum(cost_usd)",
            "latency": "sum(latency_ms_sum) / nullif(sum(requests), 0)"}
GROUPS_SQL = """
WITH ranked AS (
    SELECT key, count(*) OVER () AS groups_total,
           row_number() OVER (ORDER BY score DESC NULLS LAST, key) AS position
    FROM (SELECT key, {score} AS score
          FROM metrics_rollup
          WHERE grain = %(grain)s AND dim = %(dim)s AND bucket_start >= %(since)s
          GROUP BY key) g
    ORDER BY position
    LIMIT %(limit)s
)
SELECT k.position, k.groups_total, m.bucket_start, m.key, m.requests, m.client_errors, m.server_errors,
       m.error_codes, m.latency_ms_sum, m.latency_counts, array_lower(m.latency_counts, 1) AS latency_from,
       m.streams, m.ttfb_ms_sum, m.ttfb_counts, array_lower(m.ttfb_counts, 1) AS ttfb_from, m.llm_requests,
       m.cache_hits, m.operations, m.failed_operations, m.retries, m.fallbacks, m.input_tokens,
       m.output_tokens, m.cost_usd
FROM metrics_rollup m JOIN ranked k ON k.key = m.key
WHERE m.grain = %(grain)s AND m.dim = %(dim)s AND m.bucket_start >= %(since)s
ORDER BY k.position
"""

# The ledger rows of each listed request, found through its request_id index.
_RECENT_COLUMNS = """
SELECT r.created_at, r.request_id, r.function, r.method, r.status, r.error_code, r.latency_ms, r.ttfb_ms,
       r.caller, r.user_id, r.namespace, l.models, l.operations, l.input_tokens, l.output_tokens, l.cost_usd
FROM recent r
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT u.model) AS models, count(*) FILTER (WHERE u.status <> 'cached') AS operations,
           sum(u.input_tokens) AS input_tokens, sum(u.output_tokens) AS output_tokens, sum(u.cost_usd) AS cost_usd
    FROM usage_ledger u
    WHERE u.request_id = r.request_id AND u.created_at <= r.created_at
      AND u.created_at >= r.created_at - make_interval(secs => r.latency_ms / 1000 + 60)
) l ON true
"""
SLOWEST_SQL = """
WITH recent AS (
    SELECT * FROM request_log WHERE created_at >= %(since)s ORDER BY latency_ms DESC LIMIT %(limit)s
)""" + _RECENT_COLUMNS + "ORDER BY r.latency_ms DESC"
FAILED_SQL = """
WITH recent AS (
    SELECT * FROM request_log WHERE status >= 400 AND created_at >= %(since)s
    ORDER BY created_at DESC LIMIT %(limit)s
)""" + _RECENT_COLUMNS + "ORDER BY r.created_at DESC"


_SUMMED = ("requests", "client_errors", "server_errors", "latency_ms_sum", "streams", "ttfb_ms_sum", "llm_requests",
           "cache_hits", "operations", "failed_operations", "retries", "fallbacks", "input_tokens", "output_tokens",
           "cost_usd")


@dataclass
class Figures:
    """Sums over rollup rows; `as_dict` turns them into the figures a client reads."""

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    error_codes: Counter = field(default_factory=Counter)
    latency_ms_sum: float = 0.0
    latency_counts: Histogram | None = None
    streams: int = 0
    ttfb_ms_sum: float = 0.0
    ttfb_counts: Histogram | None = None
    llm_requests: int = 0
    cache_hits: int = 0
    operations: int = 0
    failed_operations: int = 0
    retries: int = 0
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, row: dict[str, Any]) -> None:
        """Add one rollup row."""
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + row[name])
        if row["error_codes"]:
            self.error_codes.update(row["error_codes"])
        self.latency_counts = add_sparse(self.latency_counts, row["latency_counts"], row["latency_from"])
        self.ttfb_counts = add_sparse(self.ttfb_counts, row["ttfb_counts"], row["ttfb_from"])

    def merge(self, other: Figures) -> None:
        """Add the figures of another group or bucket."""
        for name in _SUMMED:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.error_codes.update(other.error_codes)
        self.latency_counts = add_counts(self.latency_counts, other.latency_counts)
        self.ttfb_counts = add_counts(self.ttfb_counts, other.ttfb_counts)

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors

    def as_dict(self) -> dict[str, Any]:
        n = self.requests
        return {
            "requests": n,
            "errors": self.errors,
            "client_errors": self.client_errors,
            "server_errors": self.server_errors,
            "error_rate": _ratio(self.errors, n),
            "server_error_rate": _ratio(self.server_errors, n),
            "errors_by_code": {code: {"count": count, "rate": _ratio(count, n)}
                               for code, count in sorted(self.error_codes.items(), key=lambda kv: -kv[1])},
            "latency_ms": _distribution(self.latency_counts, self.latency_ms_sum, n),
            "ttft_ms": {"streams": self.streams, **_distribution(self.ttfb_counts, self.ttfb_ms_sum, self.streams)},
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost_usd": round(float(self.cost_usd), 8),
            "llm_requests": self.llm_requests,
            "cache_hits": self.cache_hits,
            "cache_hit_rate": _ratio(self.cache_hits, self.llm_requests),
            "operations": self.operations,
            "failed_operations": self.failed_operations,
            "retries": self.retries,
            "fallbacks": self.fallbacks,
        }

    def point(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The figures one time-series point carries (flat, so each becomes one array); `names`
        picks some of them."""
        n = self.requests
        p50, p95, p99 = percentiles(self.latency_counts, (0.5, 0.95, 0.99))
        figures = {
            "requests": n, "errors": self.errors, "server_errors": self.server_errors,
            "error_rate": _ratio(self.errors, n), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cost_usd": round(float(self.cost_usd), 8), "llm_requests": self.llm_requests,
            "cache_hits": self.cache_hits, "cache_hit_rate": _ratio(self.cache_hits, self.llm_requests),
            "retries": self.retries, "fallbacks": self.fallbacks,
        }
        if names is None or "ttft_p50_ms" in names:
            figures["ttft_p50_ms"], figures["ttft_p95_ms"] = percentiles(self.ttfb_counts, (0.5, 0.95))
        return figures if names is None else {name: figures[name] for name in names}


# What each group's series carries (the total series carries every figure of `Figures.point`).
GROUP_POINT = ("requests", "errors", "error_rate", "p50_ms", "p95_ms", "p99_ms", "input_tokens", "output_tokens",
               "cost_usd", "cache_hit_rate")


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 6) if whole else None


def _distribution(counts: Histogram | None, total_ms: float, n: int) -> dict[str, float | None]:
    p50, p95, p99 = percentiles(counts, (0.5, 0.95, 0.99))
    return {"mean": round(total_ms / n, 3) if n else None, "p50": p50, "p95": p95, "p99": p99}


def window_buckets(now: datetime, window: str) -> tuple[str, list[datetime]]:
    """The grain and the bucket starts (oldest first) a window covers at `now`."""
    grain, span = WINDOWS[window]
    step = timedelta(hours=1) if grain == "hour" else timedelta(days=1)

    def floor(moment: datetime) -> datetime:
        moment = moment.replace(minute=0, second=0, microsecond=0)
        return moment if grain == "hour" else moment.replace(hour=0)

    first, last = floor(now - span), floor(now)
    starts = [first]
    while starts[-1] < last:
        starts.append(starts[-1] + step)
    return grain, starts


async def read_metrics(conn: AsyncConnection, *, window: str = "24h", by: str = "function",
                       sort: str = "requests", limit: int = 25, recent: int = 10) -> dict[str, Any]:
    """The JSON document of GET /api/metrics (see docs/observability.md for every field)."""
    cur = await conn.execute("SELECT now() AT TIME ZONE 'UTC'")
    now = (await cur.fetchone())[0]
    grain, starts = window_buckets(now, window)
    index = {start: i for i, start in enumerate(starts)}
    since = _utc(starts[0])

    async def figures(dim: str, count: int) -> tuple[list[str], int, dict[str, Figures], dict[str, list[Figures]]]:
        """The first `count` groups of `dim`, in order, how many there are, and their figures
        overall and per bucket."""
        from psycopg.rows import dict_row

        keys: list[str] = []
        total = 0
        overall: dict[str, Figures] = {}
        series: dict[str, list[Figures]] = {}
        async with conn.cursor(binary=True, row_factory=dict_row) as rows:
            await rows.execute(GROUPS_SQL.format(score=_RANK_BY[sort]),
                               {"grain": grain, "dim": dim, "since": since, "limit": count})
            for row in await rows.fetchall():
                key, total = row["key"], row["groups_total"]
                if key not in overall:
                    keys.append(key)
                    overall[key], series[key] = Figures(), [Figures() for _ in starts]
                at = index.get(_naive_utc(row["bucket_start"]))
                if at is not None:
                    overall[key].add(row)
                    series[key][at].add(row)
        return keys, total, overall, series

    # every request once: the function groups (a handful of keys) give the totals
    functions, function_count, per_function, function_series = await figures("function", 10_000)
    totals, total_series = Figures(), [Figures() for _ in starts]
    for key in functions:
        totals.merge(per_function[key])
        for at, point in enumerate(function_series[key]):
            total_series[at].merge(point)
    if by == "function":
        keys, groups_total, groups, group_series = functions[:limit], function_count, per_function, function_series
    else:
        keys, groups_total, groups, group_series = await figures(by, limit)

    document: dict[str, Any] = {
        "window": window, "by": by, "grain": grain, "sort": sort,
        "since": _iso(starts[0]), "until": _iso(now), "percentile_error": round(PERCENTILE_ERROR, 4),
        "totals": totals.as_dict(),
        "groups": [{"group": key or None, **groups[key].as_dict()} for key in keys],
        "groups_total": groups_total,
        "series": {
            "start": [_iso(s) for s in starts],
            "total": _columns([f.point() for f in total_series]),
            "groups": {key: _columns([f.point(GROUP_POINT) for f in group_series[key]]) for key in keys},
        },
    }
    if recent:
        since_exact = _utc(now - WINDOWS[window][1])
        document["recent"] = {"slowest": await _recent(conn, SLOWEST_SQL, since_exact, recent),
                              "failed": await _recent(conn, FAILED_SQL, since_exact, recent)}
    return document


async def _recent(conn: AsyncConnection, sql: str, since: datetime, limit: int) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, {"since": since, "limit": limit})
        rows = await cur.fetchall()
    return [{
        "at": _iso(r["created_at"]), "request_id": r["request_id"], "function": r["function"],
        "method": r["method"], "status": r["status"], "error_code": r["error_code"],
        "latency_ms": round(r["latency_ms"], 1),
        "ttft_ms": None if r["ttfb_ms"] is None else round(r["ttfb_ms"], 1),
        "caller": r["caller"], "user": r["user_id"], "namespace": r["namespace"],
        "models": sorted(r["models"] or []), "operations": r["operations"] or 0,
        "tokens": {"input": r["input_tokens"] or 0, "output": r["output_tokens"] or 0},
        "cost_usd": None if r["cost_usd"] is None else round(float(r["cost_usd"]), 8),
    } for r in rows]


def _columns(points: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """[{a: 1, b: 2}, {a: 3, b: 4}] -> {a: [1, 3], b: [2, 4]}: one array per figure, as charts take them."""
    if not points:
        return {}
    return {name: [p[name] for p in points] for name in points[0]}


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _naive_utc(moment).isoformat(timespec="seconds") + "Z"
