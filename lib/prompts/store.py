"""Prompts in Postgres: versions are only ever inserted; labels move, and every move is recorded.

Version numbers come from `prompts.latest_version`, bumped by the same statement that creates the
prompt on first use (`_NEXT_VERSION`), so concurrent creates serialise on one row and never share a
number. A label move locks that row too, so the `from` of the audit row is the version the label
really left.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.prompts.templates import LATEST, PromptVersion, placeholders

if TYPE_CHECKING:
    from psycopg import AsyncConnection

    from lib.prompts.request import CreatePrompt

_COLUMNS = ("name, version, kind, template, messages, model, params, variables, commit_message, "
            "created_by, created_at")

_NEXT_VERSION = """
INSERT INTO prompts (name, latest_version, created_by) VALUES (%(name)s, 1, %(by)s)
ON CONFLICT (name) DO UPDATE SET latest_version = prompts.latest_version + 1
RETURNING latest_version
"""

_INSERT_VERSION = f"""
INSERT INTO prompt_versions ({_COLUMNS})
VALUES (%(name)s, %(version)s, %(kind)s, %(template)s, %(messages)s, %(model)s, %(params)s,
        %(variables)s, %(commit_message)s, %(by)s, now())
RETURNING {_COLUMNS}
"""

_LABEL_UPSERT = """
INSERT INTO prompt_labels (name, label, version, moved_by) VALUES (%(name)s, %(label)s, %(version)s, %(by)s)
ON CONFLICT (name, label) DO UPDATE SET version = EXCLUDED.version, moved_by = EXCLUDED.moved_by,
                                        moved_at = now()
"""

_LABEL_MOVE = """
INSERT INTO prompt_label_moves (name, label, from_version, to_version, moved_by)
VALUES (%(name)s, %(label)s, %(previous)s, %(version)s, %(by)s)
RETURNING moved_at
"""

_LIST = """
SELECT p.name, p.latest_version, p.created_at,
       (SELECT max(v.created_at) FROM prompt_versions v WHERE v.name = p.name) AS updated_at,
       coalesce((SELECT jsonb_object_agg(l.label, l.version) FROM prompt_labels l WHERE l.name = p.name),
                '{}'::jsonb) AS labels
FROM prompts p ORDER BY p.name LIMIT %(limit)s OFFSET %(offset)s
"""


def version_from_row(row: Iterable[Any]) -> PromptVersion:
    (name, version, kind, template, messages, model, params, variables, commit_message, created_by,
     created_at) = row
    pairs = tuple((m["role"], m["content"]) for m in messages) if messages is not None else None
    return PromptVersion(name, version, kind, template, pairs, model, params or {}, tuple(variables or ()),
                         commit_message, created_by, created_at)


async def create_version(conn: AsyncConnection, body: CreatePrompt, by: str) -> tuple[PromptVersion, list[str]]:
    """Insert the next version of `body.name` and point `body.labels` at it; returns the version and
    its labels."""
    from psycopg.types.json import Jsonb

    messages = [m.model_dump() for m in body.messages] if body.messages is not None else None
    texts = [body.template] if body.template is not None else [m["content"] for m in messages or []]
    values = {
        "name": body.name, "kind": "text" if body.template is not None else "chat", "template": body.template,
        "messages": Jsonb(messages) if messages is not None else None, "model": body.model,
        "params": Jsonb(body.params.model_dump(mode="json", exclude_none=True)),
        "variables": list(placeholders(texts)), "commit_message": body.commit_message, "by": by,
    }
    async with conn.transaction():
        cur = await conn.execute(_NEXT_VERSION, values)
        values["version"] = (await cur.fetchone())[0]
        cur = await conn.execute(_INSERT_VERSION, values)
        version = version_from_row(await cur.fetchone())
        for label in body.labels:
            await move_label(conn, body.name, label, version.version, by)
    return version, list(body.labels)


async def move_label(conn: AsyncConnection, name: str, label: str, version: int, by: str) -> dict[str, Any]:
    """Point `label` at `version` and record the move. Pointing it where it already is changes
    nothing and records nothing (`moved: false`)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT latest_version FROM prompts WHERE name = %s FOR UPDATE", (name,))
        row = await cur.fetchone()
        if row is None:
            raise errors.NotFound(f"no prompt named {name!r}")
        if not 1 <= version <= row[0]:
            raise errors.field_error("version", f"prompt {name!r} has versions 1 to {row[0]}")
        cur = await conn.execute("SELECT version FROM prompt_labels WHERE name = %s AND label = %s",
                                 (name, label))
        previous = (await cur.fetchone() or (None,))[0]
        result = {"name": name, "label": label, "version": version, "previous_version": previous,
                  "moved": previous != version}
        if previous == version:
            return result
        values = {"name": name, "label": label, "version": version, "previous": previous, "by": by}
        await conn.execute(_LABEL_UPSERT, values)
        cur = await conn.execute(_LABEL_MOVE, values)
        result.update(moved_by=by, moved_at=(await cur.fetchone())[0])
    return result


async def read_version(conn: AsyncConnection, name: str, *, label: str | None = None,
                       version: int | None = None) -> PromptVersion | None:
    """One version by number, by label, or the newest (`latest`, or neither given); None if absent."""
    if version is not None:
        sql, params = f"SELECT {_COLUMNS} FROM prompt_versions WHERE name = %s AND version = %s", (name, version)
    elif label is None or label == LATEST:
        sql, params = f"SELECT {_COLUMNS} FROM prompt_versions WHERE name = %s ORDER BY version DESC LIMIT 1", (name,)
    else:
        sql = (f"SELECT {_COLUMNS} FROM prompt_versions WHERE name = %s"
               " AND version = (SELECT version FROM prompt_labels WHERE name = %s AND label = %s)")
        params = (name, name, label)
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return version_from_row(row) if row is not None else None


async def labels_of(conn: AsyncConnection, name: str) -> dict[str, dict[str, Any]]:
    cur = await conn.execute("SELECT label, version, moved_by, moved_at FROM prompt_labels WHERE name = %s"
                             " ORDER BY label", (name,))
    return {label: {"version": version, "moved_by": by, "moved_at": at}
            for label, version, by, at in await cur.fetchall()}


async def list_prompts(conn: AsyncConnection, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    cur = await conn.execute(_LIST, {"limit": limit, "offset": offset})
    return [{"name": name, "latest_version": latest, "labels": {LATEST: latest, **labels},
             "created_at": created_at, "updated_at": updated_at}
            for name, latest, created_at, updated_at, labels in await cur.fetchall()]


async def prompt_history(conn: AsyncConnection, name: str, *, limit: int = 500) -> dict[str, Any] | None:
    """Every version (newest first), where each label points, and the label moves (newest first)."""
    cur = await conn.execute("SELECT latest_version FROM prompts WHERE name = %s", (name,))
    row = await cur.fetchone()
    if row is None:
        return None
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM prompt_versions WHERE name = %s"
                             " ORDER BY version DESC LIMIT %s", (name, limit))
    versions = [version_from_row(r).as_json() for r in await cur.fetchall()]
    cur = await conn.execute("SELECT label, from_version, to_version, moved_by, moved_at FROM prompt_label_moves"
                             " WHERE name = %s ORDER BY id DESC LIMIT %s", (name, limit))
    moves = [{"label": label, "from_version": before, "to_version": after, "moved_by": by, "moved_at": at}
             for label, before, after, by, at in await cur.fetchall()]
    labels = await labels_of(conn, name)
    return {"name": name, "latest_version": row[0], "labels": labels, "versions": versions, "label_moves": moves}
