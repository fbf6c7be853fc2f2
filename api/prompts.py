"""/api/prompts: prompt templates with immutable numbered versions and movable labels.

POST, chosen by `action` (writes need an admin key):
  create (default)  {name, template | messages, model?, params?, labels?, commit_message?} -> a new version
  label             {name, version, label} -> the label moved; the move is recorded (who, when, from, to)
  render            {name, label | version, variables} -> the final messages (a preview; any caller)
GET: every prompt; ?name= its versions, labels and label moves; ?name=&label= (or &version=) one version.
ai_execute and rag run a stored prompt with `"template": {"name", "label" | "version", "variables"}`.
"""

from __future__ import annotations

from typing import Any

from lib.prompts.request import CreatePrompt, MoveLabel, PromptBody, PromptQuery
from lib.web import Endpoint, Request

app = Endpoint("prompts")


@app.post(PromptBody, role="reader", errors=(404,), response={
    201: "lib.prompts.response:LabelledPromptVersion",
    200: "lib.prompts.response:LabelMove | lib.prompts.response:RenderedPrompt"})  # rendering; creating and labelling need admin (lib/prompts/access.py)
async def post(request: Request, body: Any) -> Any:
    from lib.prompts.http import create_prompt, label_prompt, render_prompt

    if isinstance(body, CreatePrompt):
        return await create_prompt(request, body)
    if isinstance(body, MoveLabel):
        return await label_prompt(request, body)
    return await render_prompt(request, body)


@app.get(PromptQuery, role="reader", errors=(404,),
         response="lib.prompts.response:PromptList | lib.prompts.response:PromptHistory"
                  " | lib.prompts.response:LabelledPromptVersion")
async def get(request: Request, query: PromptQuery) -> dict:
    from lib.prompts.http import read_prompts

    return await read_prompts(request, query)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
