"""What `GET /api/metrics` answers as JSON (`?format=prometheus` answers the Prometheus text
format instead): figures for the window, per group, as time series, and the slowest and failed
requests. docs/observability.md says how each figure is counted.

Documentation models (see lib/shapes.py): read_metrics returns a plain dict, and the tests hold
real answers to these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lib.shapes import Shape

Ratio = float | None  # 0..1; null when there is nothing to divide by


class ErrorCount(Shape):
    count: int
    rate: Ratio


class Latency(Shape):
    """Milliseconds; percentiles from the rollups' histograms (see `percentile_error`)."""

    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class TimeToFirstToken(Latency):
    streams: int = Field(description="streamed responses measured")


class TokenCounts(Shape):
    input: int
    output: int


class Figures(Shape):
    """The figures of the window, in total or for one group."""

    requests: int
    errors: int
    client_errors: int
    server_errors: int
    error_rate: Ratio
    server_error_rate: Ratio
    errors_by_code: dict[str, ErrorCount] = Field(description="error code -> count, most frequent first")
    latency_ms: Latency
    ttft_ms: TimeToFirstToken
    tokens: TokenCounts
    cost_usd: float
    llm_requests: int
    cache_hits: int
    cache_hit_rate: Ratio
    operations: int = Field(description="provider calls")
    failed_operations: int
    retries: int
    fallbacks: int


class GroupFigures(Figures):
    group: str | None = Field(description="the function, model, provider, user, namespace or caller; "
                                          "null for requests without one")


class GroupSeries(Shape):
    """One value per bucket of `series.start`."""

    requests: list[int]
    errors: list[int]
    error_rate: list[Ratio]
    p50_ms: list[float | None]
    p95_ms: list[float | None]
    p99_ms: list[float | None]
    input_tokens: list[int]
    output_tokens: list[int]
    cost_usd: list[float]
    cache_hit_rate: list[Ratio]


class TotalSeries(GroupSeries):
    server_errors: list[int]
    llm_requests: list[int]
    cache_hits: list[int]
    retries: list[int]
    fallbacks: list[int]
    ttft_p50_ms: list[float | None]
    ttft_p95_ms: list[float | None]


class MetricsSeries(Shape):
    start: list[str] = Field(description="each bucket's start, ISO 8601 UTC, oldest first")
    total: TotalSeries
    groups: dict[str, GroupSeries] = Field(description="the listed groups' series, by group")


class RecentRequest(Shape):
    at: str = Field(description="when it finished, ISO 8601 UTC")
    request_id: str
    function: str
    method: str
    status: int
    error_code: str | None
    latency_ms: float
    ttft_ms: float | None
    caller: str | None
    user: str | None
    namespace: str | None
    models: list[str]
    operations: int
    tokens: TokenCounts
    cost_usd: float | None


class RecentRequests(Shape):
    slowest: list[RecentRequest]
    failed: list[RecentRequest] = Field(description="the latest with a status of 400 or more")


class MetricsReport(Shape):
    """The figures of a window: in total, per group (the first `limit` by `sort`), as time series,
    and the slowest and failed requests (absent with `recent=0`)."""

    window: Literal["1h", "24h", "7d", "30d"]
    by: Literal["function", "model", "provider", "user", "namespace", "caller"]
    grain: Literal["hour", "day"] = Field(description="the buckets: hours for 1h and 24h, UTC days for 7d and 30d")
    sort: Literal["requests", "errors", "cost", "latency"]
    since: str = Field(description="the first bucket's start, ISO 8601 UTC")
    until: str = Field(description="now, ISO 8601 UTC")
    percentile_error: float = Field(description="the largest relative error of a percentile")
    totals: Figures
    groups: list[GroupFigures]
    groups_total: int = Field(description="how many groups there are, listed or not")
    series: MetricsSeries
    recent: RecentRequests | None = None
