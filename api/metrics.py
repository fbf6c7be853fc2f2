"""GET /api/metrics: requests, errors, latency, tokens, cost and cache figures, for administrators.

`?window=1h|24h|7d|30d&by=function|model|provider|user|namespace|caller` answers JSON per group and
as a time series; `?format=prometheus` answers the Prometheus text format. See docs/observability.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lib.web import Endpoint, Request, Response, json_response
from lib.web.auth import require_admin

app = Endpoint("metrics")


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    window: Literal["1h", "24h", "7d", "30d"] = "24h"
    by: Literal["function", "model", "provider", "user", "namespace", "caller"] = "function"
    format: Literal["json", "prometheus"] = "json"
    sort: Literal["requests", "errors", "cost", "latency"] = "requests"
    limit: int = Field(25, ge=1, le=1000, description="groups listed, the first by `sort`")
    recent: int = Field(10, ge=0, le=100, description="slowest and failed requests listed")


@app.get(MetricsQuery, role="admin",
         response="lib.observe.response:MetricsReport | text/plain; version=0.0.4",
         headers={"cache-control": "no-store"})
async def metrics(request: Request, query: MetricsQuery) -> Response:
    from lib import db

    require_admin(request)
    async with db.connect(request.settings) as conn:
        if query.format == "prometheus":
            from lib.observe.prometheus import CONTENT_TYPE, read_prometheus

            return Response((await read_prometheus(conn)).encode(), media_type=CONTENT_TYPE,
                            headers={"cache-control": "no-store"})
        from lib.observe.metrics import read_metrics

        document = await read_metrics(conn, window=query.window, by=query.by, sort=query.sort,
                                      limit=query.limit, recent=query.recent)
    return json_response(document, headers={"cache-control": "no-store"})


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
