"""GET /api/openapi: the OpenAPI 3.1 document of every function (request and response models, the
error envelope and its codes, the streams), for typed clients and for the page at /api/docs.

It is the committed openapi.json, which the tests keep equal to what the models make
(`python -m lib.cli openapi > openapi.json` regenerates it).
"""

from __future__ import annotations

from lib.web import Endpoint, Request, Response

app = Endpoint("openapi", auth=False)  # the contract is public, as the repository is


@app.get(response="lib.web.openapi:OpenAPIDocument")
async def openapi(request: Request, _query: object) -> Response:
    """The OpenAPI 3.1 document, as JSON."""
    from lib.web.docs_page import openapi_document

    return Response(openapi_document(), headers={"cache-control": "no-cache"})


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
