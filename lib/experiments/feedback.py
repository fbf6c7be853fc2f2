"""Feedback on an answer: one per request and caller, updatable, and only by the caller who asked.

Tied to the request by its id, and through it to what answered: the model and prompt version in the
usage ledger, and the experiment variant in experiment_requests. A request belongs to a caller
when either holds a row of it for that caller; anything else is a 404, whether the request is
someone else's or does not exist, so ids of other tenants' requests cannot be probed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lib import errors

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# `comment` left out of an update keeps the earlier one; send "" to clear it.
_UPSERT = """
INSERT INTO feedback (caller, request_id, score, scale, value, comment)
SELECT %(caller)s, %(request_id)s, %(score)s, %(scale)s, %(value)s, %(comment)s
WHERE EXISTS (SELECT 1 FROM usage_ledger WHERE request_id = %(request_id)s AND caller = %(caller)s)
   OR EXISTS (SELECT 1 FROM experiment_requests WHERE caller = %(caller)s AND request_id = %(request_id)s)
ON CONFLICT (caller, request_id) DO UPDATE SET
    score = EXCLUDED.score, scale = EXCLUDED.scale, value = EXCLUDED.value,
    comment = coalesce(EXCLUDED.comment, feedback.comment), updated_at = now()
RETURNING score, scale, value, comment, created_at, updated_at
"""

_TIED_TO = """
SELECT (SELECT jsonb_build_object('name', experiment, 'variant', variant) FROM experiment_requests
        WHERE caller = %(caller)s AND request_id = %(request_id)s),
       answered.model, answered.prompt_name, answered.prompt_version
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT model, prompt_name, prompt_version FROM usage_ledger
    WHERE request_id = %(request_id)s AND caller = %(caller)s AND kind = 'chat'
    ORDER BY (status IN ('ok', 'cached')) DESC, id DESC LIMIT 1
) answered ON true
"""


async def _tied_to(conn: AsyncConnection, caller: str, request_id: str) -> dict[str, Any]:
    cur = await conn.execute(_TIED_TO, {"caller": caller, "request_id": request_id})
    experiment, model, prompt_name, prompt_version = await cur.fetchone()
    prompt = {"name": prompt_name, "version": prompt_version} if prompt_name else None
    return {"model": model, "prompt": prompt, "experiment": experiment}


def _as_json(request_id: str, row: tuple) -> dict[str, Any]:
    score, scale, value, comment, created_at, updated_at = row
    return {"request_id": request_id, "score": score, "scale": scale, "value": value, "comment": comment,
            "created_at": created_at, "updated_at": updated_at}


async def give_feedback(conn: AsyncConnection, *, caller: str, request_id: str, score: float, scale: str,
                        value: float, comment: str | None) -> dict[str, Any]:
    cur = await conn.execute(_UPSERT, {"caller": caller, "request_id": request_id, "score": score,
                                       "scale": scale, "value": value, "comment": comment})
    row = await cur.fetchone()
    if row is None:
        raise errors.NotFound(f"no request {request_id!r} made by this caller")
    return {**_as_json(request_id, row), **await _tied_to(conn, caller, request_id)}


async def read_feedback(conn: AsyncConnection, *, caller: str, request_id: str) -> dict[str, Any]:
    cur = await conn.execute("SELECT score, scale, value, comment, created_at, updated_at FROM feedback"
                             " WHERE caller = %s AND request_id = %s", (caller, request_id))
    row = await cur.fetchone()
    if row is None:
        raise errors.NotFound(f"no feedback from this caller on request {request_id!r}")
    return {**_as_json(request_id, row), **await _tied_to(conn, caller, request_id)}
