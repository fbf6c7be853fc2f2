"""Observability: every request recorded, rolled up in Postgres, read back as metrics and alerts.

    record.py      the request trace the endpoint helper keeps, written after the response
    buckets.py     the fixed latency and token buckets, and percentiles from bucket counts
    metrics.py     GET /api/metrics as JSON: figures per group and as a time series
    prometheus.py  the same rollups as Prometheus text (OpenTelemetry GenAI names)
    access.py      who may read them (`require_admin`)
    alerts.py      budget and error-rate alerts, sent once per period to a webhook
    upkeep.py      the cron's part: pruning raw rows and old rollups, then alerts
    page.py        the dashboard page and its files, as /api/dashboard serves them
    dashboard/     those files, with uPlot vendored

Nothing is imported here: the endpoint helper imports `lib.observe.record` on every cold start.
"""
