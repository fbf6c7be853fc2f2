"""Conversations kept in Postgres, so a follow-up question works across stateless invocations.

A conversation belongs to one namespace and one caller; its id may be ours (a uuid) or the chat
id `useChat` sends. History is read back newest first and trimmed to a token budget.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.tokens import count_tokens

if TYPE_CHECKING:
    from psycopg import AsyncConnection

CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")


@dataclass
class Turn:
    role: str  # user | assistant
    content: str
    citations: list[dict[str, Any]] = field(default_factory=list)


def check_conversation_id(conversation_id: str) -> str:
    if not CONVERSATION_ID.match(conversation_id):
        raise errors.field_error("conversation_id", "use 1 to 128 letters, digits or - _ : .")
    return conversation_id


async def open_conversation(conn: AsyncConnection, conversation_id: str | None, namespace: str,
                            caller: str) -> str:
    """The id of an existing conversation of this caller in this namespace, or of a new one.

    A conversation of another caller or namespace answers 404 (never reveals that it exists).
    """
    if conversation_id is None:
        cur = await conn.execute(
            "INSERT INTO conversations (namespace, caller) VALUES (%s, %s) RETURNING id", (namespace, caller)
        )
        return (await cur.fetchone())[0]
    check_conversation_id(conversation_id)
    cur = await conn.execute(
        "INSERT INTO conversations (id, namespace, caller) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        (conversation_id, namespace, caller),
    )
    if await cur.fetchone() is None:
        cur = await conn.execute("SELECT namespace, caller FROM conversations WHERE id = %s", (conversation_id,))
        row = await cur.fetchone()
        if row is None or row[0] != namespace or row[1] != caller:
            raise errors.NotFound(f"conversation {conversation_id!r} not found in namespace {namespace!r}")
    return conversation_id


async def load_history(conn: AsyncConnection, conversation_id: str, budget_tokens: int) -> list[Turn]:
    """The latest turns, oldest first, that fit in `budget_tokens` together."""
    cur = await conn.execute(
        "SELECT role, content, citations, token_count FROM conversation_turns"
        " WHERE conversation_id = %s ORDER BY id DESC LIMIT 200",
        (conversation_id,),
    )
    turns: list[Turn] = []
    used = 0
    for role, content, citations, tokens in await cur.fetchall():
        if used + tokens > budget_tokens:
            break
        used += tokens
        turns.append(Turn(role, content, citations or []))
    turns.reverse()
    # a history should not open with an answer whose question was trimmed away
    while turns and turns[0].role != "user":
        turns.pop(0)
    return turns


def trim_history(turns: list[Turn], budget_tokens: int) -> list[Turn]:
    """The same trimming for a history the client sent (useChat `messages`)."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        tokens = count_tokens(turn.content)
        if used + tokens > budget_tokens:
            break
        used += tokens
        kept.append(turn)
    kept.reverse()
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


async def append_turns(conn: AsyncConnection, conversation_id: str, turns: list[Turn]) -> None:
    """Store a question and its answer together (one transaction: never half a turn)."""
    async with conn.transaction():
        for turn in turns:
            await conn.execute(
                "INSERT INTO conversation_turns (conversation_id, role, content, citations, token_count)"
                " VALUES (%s, %s, %s, %s::jsonb, %s)",
                (conversation_id, turn.role, turn.content, json.dumps(turn.citations),
                 count_tokens(turn.content)),
            )
        await conn.execute("UPDATE conversations SET updated_at = now() WHERE id = %s", (conversation_id,))
