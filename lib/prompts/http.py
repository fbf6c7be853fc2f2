"""The prompts function's work: create versions and move labels (admins), read and preview (anyone
authenticated). Reads here go to the database, not the cache, so an editor sees a move at once."""

from __future__ import annotations

from typing import Any

from lib import db, errors
from lib.prompts.access import actor, require_admin
from lib.prompts.request import CreatePrompt, MoveLabel, PromptQuery, RenderPrompt
from lib.prompts.resolve import forget_prompts
from lib.prompts.store import (
    create_version,
    labels_of,
    list_prompts,
    move_label,
    prompt_history,
    read_version,
)
from lib.prompts.templates import PRODUCTION, PromptVersion, check_variables, render
from lib.web import Request, Response, json_response


async def create_prompt(request: Request, body: CreatePrompt) -> Response:
    """A new version (201); the first one creates the prompt."""
    require_admin(request)
    if body.model is not None:
        from lib.providers import resolve_model

        resolve_model(body.model, "model")  # an unknown provider is refused now, not when it runs
    async with db.connect(request.settings) as conn:
        version, labels = await create_version(conn, body, actor(request))
    if labels:
        forget_prompts()
    return json_response({**version.as_json(), "labels": labels}, 201)


async def label_prompt(request: Request, body: MoveLabel) -> dict[str, Any]:
    """Move a label; this instance sees it at once, the others within PROMPT_CACHE_TTL_S."""
    require_admin(request)
    async with db.connect(request.settings) as conn:
        moved = await move_label(conn, body.name, body.label, body.version, actor(request))
    forget_prompts()
    return moved


async def _version(request: Request, name: str, label: str | None, version: int | None) -> PromptVersion:
    async with db.connect(request.settings) as conn:
        found = await read_version(conn, name, label=label, version=version)
    if found is None:
        what = f"version {version}" if version is not None else f"label {label!r}"
        raise errors.NotFound(f"prompt {name!r} has no {what}")
    return found


async def render_prompt(request: Request, body: RenderPrompt) -> dict[str, Any]:
    """The messages a version gives with these variables, as ai_execute would send them."""
    label = body.label if body.label is not None or body.version is not None else PRODUCTION
    version = await _version(request, body.name, label, body.version)
    check_variables(version, body.variables, where="variables")
    messages = [{"role": role, "content": content} for role, content in render(version, body.variables)]
    return {"name": version.name, "version": version.version, "kind": version.kind, "model": version.model,
            "params": dict(version.params), "messages": messages}


async def read_prompts(request: Request, query: PromptQuery) -> dict[str, Any]:
    if query.name is None:
        async with db.connect(request.settings) as conn:
            return {"prompts": await list_prompts(conn)}
    if query.label is None and query.version is None:
        async with db.connect(request.settings) as conn:
            history = await prompt_history(conn, query.name)
        if history is None:
            raise errors.NotFound(f"no prompt named {query.name!r}")
        return history
    version = await _version(request, query.name, query.label, query.version)
    async with db.connect(request.settings) as conn:
        labels = [label for label, where in (await labels_of(conn, query.name)).items()
                  if where["version"] == version.version]
    return {**version.as_json(), "labels": labels}
