"""GET /api/docs: the API reference, rendered in the browser from /api/openapi.

The page is Redoc (vendored in lib/web/redoc/, no CDN); `?asset=<name>` serves its script.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from lib.web import Endpoint, Request, Response

app = Endpoint("docs", auth=False)  # the page carries no data; it reads the public document


class DocsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    asset: Literal["redoc.standalone.js"] | None = None


@app.get(DocsQuery, response="text/html | text/javascript")
async def docs(request: Request, query: DocsQuery) -> Response:
    """The reference page (HTML), or with `?asset=` its script."""
    from lib.web import docs_page

    if query.asset is None:
        return Response(docs_page.read("index.html"), media_type="text/html; charset=utf-8",
                        headers=dict(docs_page.PAGE_HEADERS))
    return Response(docs_page.read(query.asset), media_type=docs_page.ASSETS[query.asset],
                    headers=dict(docs_page.ASSET_HEADERS))


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
