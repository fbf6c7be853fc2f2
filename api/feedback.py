"""/api/feedback: a score on an answer, tied to its request and so to its model, prompt version and
experiment variant.

POST {request_id, score, scale?, comment?}: thumbs (-1/1), 0..1, or 1..5 (stars), stored with its
value normalized to 0..1; one per request and caller, sent again to change it. Only the caller who
made the request may rate it (404 otherwise). GET ?request_id= reads it back.
"""

from __future__ import annotations

from lib.experiments.request import FeedbackBody, FeedbackQuery
from lib.web import Endpoint, Request, Response

app = Endpoint("feedback")


@app.post(FeedbackBody, role="reader", errors=(404,), response={
    201: "lib.experiments.response:Feedback", 200: "lib.experiments.response:Feedback"})  # end users rate their own answers
async def post(request: Request, body: FeedbackBody) -> Response:
    from lib.experiments.http import post_feedback

    return await post_feedback(request, body)


@app.get(FeedbackQuery, role="reader", errors=(404,), response="lib.experiments.response:Feedback")
async def get(request: Request, query: FeedbackQuery) -> dict:
    from lib.experiments.http import get_feedback

    return await get_feedback(request, query)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
