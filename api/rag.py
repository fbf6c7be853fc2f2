"""POST /api/rag: find the passages that answer a question and answer it with citations.

`answer: false` makes it a search endpoint (`{"results": [...]}`); `stream: true` (the default
when `useChat` sends `messages`) streams the answer as the AI SDK UI message stream, or as plain
text with `protocol: "text"`.
"""

from __future__ import annotations

from typing import Any

from lib.retrieval.request import RagRequest
from lib.web import Endpoint, Request

app = Endpoint("rag")


@app.post(RagRequest, role="reader",
          response="lib.retrieval.response:AnswerResponse | lib.retrieval.response:SearchResponse",
          streams={"ui": "lib.retrieval.response:AnswerMessageMetadata", "text": None},
          errors=(402, 404, 429, 502, 504), headers={"x-conversation-id": "the conversation the turn was "
                                                    "stored in (streamed answers)"})
async def rag(request: Request, body: RagRequest) -> Any:
    """Search a namespace and answer with citations (`answer: false`: search only)."""
    from lib.experiments.serving import serve_rag
    from lib.retrieval.http import answer_request

    request.require_namespace(body.namespace)
    body, served, prompt = await serve_rag(request, body)  # a stored `template` and `experiment` variant, if named
    return await answer_request(request, body, prompt=prompt, metadata=served.fields)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
