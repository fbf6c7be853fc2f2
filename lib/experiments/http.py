"""The experiments and feedback functions' work.

Experiments are admin business, reads included: a report aggregates every tenant's traffic and
feedback. Feedback belongs to whoever made the request.
"""

from __future__ import annotations

from typing import Any

from lib import db, errors
from lib.experiments.report import experiment_report
from lib.experiments.request import (
    ChangeStatus,
    CreateExperiment,
    ExperimentQuery,
    FeedbackBody,
    FeedbackQuery,
    PickWinner,
)
from lib.experiments.serving import forget_experiments
from lib.experiments.store import (
    change_status,
    list_experiments,
    load_experiment,
    pick_winner,
    save_experiment,
)
from lib.prompts.access import actor, require_admin
from lib.prompts.resolve import forget_prompts
from lib.web import Request, Response, json_response


async def change_experiment(request: Request, body: CreateExperiment | ChangeStatus | PickWinner) -> Any:
    require_admin(request)
    if isinstance(body, CreateExperiment):
        from lib.providers import resolve_model

        for i, variant in enumerate(body.variants):
            if variant.model is not None:
                resolve_model(variant.model, f"variants.{i}.model")
    async with db.connect(request.settings) as conn:
        if isinstance(body, CreateExperiment):
            result: Any = json_response((await save_experiment(conn, body, actor(request))).as_json(), 201)
        elif isinstance(body, ChangeStatus):
            result = (await change_status(conn, body.name, body.action, actor(request))).as_json()
        else:
            experiment, moved = await pick_winner(conn, body.name, body.variant, body.label, actor(request))
            result = {**experiment.as_json(), "label_moved": moved}
            forget_prompts()
    forget_experiments()  # this instance at once; the others within PROMPT_CACHE_TTL_S
    return result


async def read_experiments(request: Request, query: ExperimentQuery) -> dict[str, Any]:
    require_admin(request)
    async with db.connect(request.settings) as conn:
        if query.name is None:
            return {"experiments": await list_experiments(conn)}
        experiment = await load_experiment(conn, query.name)
        if experiment is None:
            raise errors.NotFound(f"no experiment named {query.name!r}")
        return await experiment_report(conn, experiment)


async def post_feedback(request: Request, body: FeedbackBody) -> Response:
    from lib.experiments.feedback import give_feedback

    scale, value = body.normalized()
    async with db.connect(request.settings) as conn:
        saved = await give_feedback(conn, caller=request.caller, request_id=body.request_id, score=body.score,
                                    scale=scale, value=value, comment=body.comment)
    return json_response(saved, 201 if saved["created_at"] == saved["updated_at"] else 200)


async def get_feedback(request: Request, query: FeedbackQuery) -> dict[str, Any]:
    from lib.experiments.feedback import read_feedback

    async with db.connect(request.settings) as conn:
        return await read_feedback(conn, caller=request.caller, request_id=query.request_id)
