"""Observability: every request recorded, rolled up in Postgres, read back as metrics and alerts.

    record.py      writes each finished request the edge hands over (lib/web/trace.py)
    buckets.py     the fixed latency and token buckets, and percentiles from bucket counts
    metrics.py     GET /api/metrics as JSON: figures per group and as a time series
    prometheus.py  the same rollups as Prometheus text (OpenTelemetry GenAI names)
    alerts.py      budget and error-rate alerts, sent once per period to a webhook
    upkeep.py      the cron's part: pruning raw rows and old rollups, then alerts
    page.py        the dashboard page and its files, as /api/dashboard serves them
    dashboard/     those files, with uPlot vendored

Nothing is imported here: `lib/__init__.py` imports `record` on every cold start, the rest is
imported by the functions and the cron that use it. Who may read metrics is `require_admin` in
lib/web/auth.py.
"""
