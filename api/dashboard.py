"""GET /api/dashboard: the metrics dashboard page (charts and tables of /api/metrics).

The page carries no data and asks for the key of an administrator, which it keeps in this browser
tab (sessionStorage) and sends as a Bearer token to /api/metrics, the function that checks it.
`?asset=<name>` serves the page's scripts and styles (uPlot is vendored, no CDN).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from lib.web import Endpoint, Request, Response

app = Endpoint("dashboard", auth=False)  # the page is public; the figures it loads are admin only


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    asset: Literal["dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css"] | None = None


@app.get(PageQuery, response="text/html | text/javascript | text/css")
async def dashboard(request: Request, query: PageQuery) -> Response:
    from lib.observe import page

    if query.asset is None:
        return Response(page.read("index.html"), media_type="text/html; charset=utf-8",
                        headers=dict(page.PAGE_HEADERS))
    return Response(page.read(query.asset), media_type=page.ASSETS[query.asset], headers=dict(page.ASSET_HEADERS))


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
