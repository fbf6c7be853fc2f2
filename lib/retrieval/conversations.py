"""Conversations kept in Postgres, so a follow-up question works across stateless invocations.

A conversation belongs to one namespace and one caller, and its id (ours, a uuid, or the chat id
`useChat` sends) is unique only within them: the same id used by two callers names two
conversations. History is read back newest first and trimmed to a token budget.
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

    Conversations of other callers are out of sight: their ids are free to be used again here.
    """
    if conversation_id is None:
        cur = await conn.execute(
            "INSERT INTO conversations (namespace, caller) VALUES (%s, %s) RETURNING id", (namespace, caller)
        )
        return (await cur.fetchone())[0]
    check_conversation_id(conversation_id)
    await conn.execute(
        "INSERT INTO conversations (id, namespace, caller) VALUES (%s, %s, %s)"
        " ON CONFLICT (caller, namespace, id) DO NOTHING",
        (conversation_id, namespace, caller),
    )
    return conversation_id


async def load_history(conn: AsyncConnection, conversation_id: str, budget_tokens: int, *,
                       namespace: str, caller: str) -> list[Turn]:
    """The latest turns, oldest first, that fit in `budget_tokens` together."""
    cur = await conn.execute(
        "SELECT role, content, citations, token_count FROM conversation_turns"
        " WHERE caller = %s AND namespace = %s AND conversation_id = %s ORDER BY id DESC LIMIT 200",
        (caller, namespace, conversation_id),
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


async def append_turns(conn: AsyncConnection, conversation_id: str, turns: list[Turn], *,
                       namespace: str, caller: str) -> None:
    """Store a question and its answer together (one transaction: never half a turn)."""
    async with conn.transaction():
        for turn in turns:
            await conn.execute(
                "INSERT INTO conversation_turns"
                " (caller, namespace, conversation_id, role, content, citations, token_count)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
                (caller, namespace, conversation_id, turn.role, turn.content, json.dumps(turn.citations),
                 count_tokens(turn.content)),
            )
        await conn.execute(
            "UPDATE conversations SET updated_at = now() WHERE caller = %s AND namespace = %s AND id = %s",
            (caller, namespace, conversation_id))
