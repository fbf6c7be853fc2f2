"""Conversations kept in Postgres, so a follow-up question works across stateless invocations.

A conversation belongs to one namespace and one caller, and its id (ours, a uuid, or the chat id
`useChat` sends) is unique only within them: the same id used by two callers names two
conversations. History is read back newest first and trimmed to a token budget.

rag stores a question and its answer as text with citations (`append_turns`, `load_history`).
The assistant (`/api/ai_execute`) stores each turn as an AI SDK UI message with its parts, text,
tool calls and their results (`save_chat_turns`, `chat_turns`), and keeps a running summary of
what no longer fits its model's window (`save_summary`). Both live in the same tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
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


# --- assistant chats: turns as AI SDK UI messages, summaries, listing -------------------------------


def conversation_owner(caller: str, user: str | None) -> str:
    """Whose chats these are: the caller, or one end user of the caller. A user id is the caller's
    own name for a person (two API keys may both have a user "42"), so it is kept with its caller."""
    return f"{caller}/user:{user}" if user else caller


@dataclass
class Conversation:
    """A conversation's own row: its running summary and what it covers."""

    id: str
    namespace: str
    title: str | None
    summary: str | None
    summary_through: int | None  # the last turn id folded into the summary
    summary_turns: int
    created_at: Any
    updated_at: Any


@dataclass
class StoredTurn:
    """One stored turn: a UI message (`parts`) for an assistant chat, `content` and `citations`
    for a rag turn (its `parts` are None)."""

    id: int
    role: str
    content: str
    citations: list[dict[str, Any]]
    message_id: str | None
    parts: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    token_count: int


@dataclass
class NewTurn:
    """A UI message to store; `content` is its text and `token_count` the estimate of everything
    the model will be sent for it (tool calls and results included)."""

    message_id: str
    role: str
    parts: list[dict[str, Any]]
    content: str
    token_count: int
    metadata: dict[str, Any] | None = None


_CONVERSATION = """
SELECT id, namespace, title, summary, summary_through, summary_turns, created_at, updated_at
FROM conversations WHERE caller = %(caller)s AND namespace = %(namespace)s AND id = %(id)s
"""

# The newest turns whose tokens (the estimate stored with each) add up to `within`, and the one
# that crosses it; a turn beyond that could not be sent to the model anyway. `older` counts the
# turns left unread.
_TURNS = """
SELECT id, role, content, citations, message_id, parts, metadata, token_count, total - count(*) OVER () AS older
FROM (
    SELECT t.*, sum(token_count) OVER (ORDER BY id DESC) AS newer_tokens, count(*) OVER () AS total
    FROM conversation_turns t
    WHERE caller = %(caller)s AND namespace = %(namespace)s AND conversation_id = %(id)s AND id > %(after)s
) recent
WHERE %(within)s::bigint IS NULL OR newer_tokens - token_count < %(within)s::bigint
ORDER BY id
"""

_INSERT_TURN = """
INSERT INTO conversation_turns
    (caller, namespace, conversation_id, role, content, token_count, message_id, parts, metadata)
VALUES (%(caller)s, %(namespace)s, %(id)s, %(role)s, %(content)s, %(token_count)s, %(message_id)s,
        %(parts)s, %(metadata)s)
ON CONFLICT (caller, namespace, conversation_id, message_id) WHERE message_id IS NOT NULL
DO UPDATE SET content = EXCLUDED.content, token_count = EXCLUDED.token_count, parts = EXCLUDED.parts,
              metadata = coalesce(EXCLUDED.metadata, conversation_turns.metadata)
    WHERE conversation_turns.role = EXCLUDED.role
RETURNING id
"""

_UPDATE_TURN = """
UPDATE conversation_turns SET content = %(content)s, token_count = %(token_count)s, parts = %(parts)s,
       metadata = coalesce(%(metadata)s, metadata)
WHERE caller = %(caller)s AND namespace = %(namespace)s AND conversation_id = %(id)s AND id = %(turn)s
"""

# Turns after the one the client's view of the chat ends with: a regenerated answer, or everything
# after an edited question. A summary that covered them (or the edited question) no longer applies.
_DELETE_AFTER = """
WITH gone AS (
    DELETE FROM conversation_turns
    WHERE caller = %(caller)s AND namespace = %(namespace)s AND conversation_id = %(id)s AND id > %(turn)s
    RETURNING id
)
UPDATE conversations SET summary = NULL, summary_through = NULL, summary_turns = 0
WHERE caller = %(caller)s AND namespace = %(namespace)s AND id = %(id)s
  AND summary_through >= %(turn)s AND EXISTS (SELECT 1 FROM gone)
"""

_TOUCH = """
UPDATE conversations SET updated_at = now(), title = coalesce(title, %(title)s)
WHERE caller = %(caller)s AND namespace = %(namespace)s AND id = %(id)s
"""

_SAVE_SUMMARY = """
UPDATE conversations SET summary = %(summary)s, summary_through = %(through)s, summary_turns = %(turns)s
WHERE caller = %(caller)s AND namespace = %(namespace)s AND id = %(id)s
"""

_LIST = """
SELECT c.id, c.title, c.created_at, c.updated_at,
       (SELECT count(*) FROM conversation_turns t
        WHERE t.caller = c.caller AND t.namespace = c.namespace AND t.conversation_id = c.id) AS turns
FROM conversations c
WHERE c.caller = %(caller)s AND c.namespace = %(namespace)s
ORDER BY c.updated_at DESC, c.id
LIMIT %(limit)s OFFSET %(offset)s
"""

_DELETE = """
WITH turns AS (
    SELECT count(*) AS n FROM conversation_turns
    WHERE caller = %(caller)s AND namespace = %(namespace)s AND conversation_id = %(id)s
)
DELETE FROM conversations WHERE caller = %(caller)s AND namespace = %(namespace)s AND id = %(id)s
RETURNING (SELECT n FROM turns)
"""


def _scope(conversation_id: str, namespace: str, caller: str) -> dict[str, Any]:
    return {"id": conversation_id, "namespace": namespace, "caller": caller}


async def find_conversation(conn: AsyncConnection, conversation_id: str, *, namespace: str,
                            caller: str) -> Conversation | None:
    """The conversation of this caller in this namespace, or None (another caller's is none too)."""
    cur = await conn.execute(_CONVERSATION, _scope(check_conversation_id(conversation_id), namespace, caller))
    row = await cur.fetchone()
    return Conversation(*row) if row else None


class Turns(list):
    """Stored turns, oldest first, and how many older ones were left unread (`older`)."""

    def __init__(self, turns: Sequence[StoredTurn] = (), older: int = 0) -> None:
        super().__init__(turns)
        self.older = older


async def chat_turns(conn: AsyncConnection, conversation_id: str, *, namespace: str, caller: str,
                     after: int | None = None, within_tokens: int | None = None) -> Turns:
    """The turns, oldest first: with `after`, only those stored after that turn id; with
    `within_tokens`, only the newest that fit in that many tokens (and the one that crosses it)."""
    cur = await conn.execute(_TURNS, {**_scope(conversation_id, namespace, caller), "after": after or 0,
                                      "within": within_tokens})
    rows = await cur.fetchall()
    return Turns([StoredTurn(row[0], row[1], row[2], row[3] or [], row[4], row[5], row[6], row[7]) for row in rows],
                 older=int(rows[0][8]) if rows else 0)


async def save_chat_turns(conn: AsyncConnection, conversation_id: str, *, namespace: str, caller: str,
                          new: Sequence[NewTurn] = (), replace: dict[int, NewTurn] | None = None,
                          delete_after: int | None = None, title: str | None = None) -> list[int]:
    """In one transaction: drop the turns after `delete_after`, rewrite the turns in `replace`
    (turn id -> its new content), append `new`. Returns the ids of the appended turns. A message id
    the chat already has (the same message sent twice at once) rewrites that turn instead."""
    from psycopg.types.json import Jsonb

    scope = _scope(conversation_id, namespace, caller)
    ids: list[int] = []
    async with conn.transaction():
        if delete_after is not None:
            await conn.execute(_DELETE_AFTER, {**scope, "turn": delete_after})
        for turn_id, turn in (replace or {}).items():
            await conn.execute(_UPDATE_TURN, {**scope, "turn": turn_id, "content": turn.content,
                                              "token_count": turn.token_count, "parts": Jsonb(turn.parts),
                                              "metadata": Jsonb(turn.metadata) if turn.metadata else None})
        for turn in new:
            cur = await conn.execute(_INSERT_TURN, {
                **scope, "role": turn.role, "content": turn.content, "token_count": turn.token_count,
                "message_id": turn.message_id, "parts": Jsonb(turn.parts),
                "metadata": Jsonb(turn.metadata) if turn.metadata else None})
            row = await cur.fetchone()  # none: the id is a message of the other role, left as it is
            if row is not None:
                ids.append(row[0])
        await conn.execute(_TOUCH, {**scope, "title": title})
    return ids


async def save_summary(conn: AsyncConnection, conversation_id: str, *, namespace: str, caller: str,
                       summary: str, through: int, turns: int) -> None:
    """Keep the running summary, which now folds every turn up to `through` (`turns` of them)."""
    await conn.execute(_SAVE_SUMMARY, {**_scope(conversation_id, namespace, caller), "summary": summary,
                                       "through": through, "turns": turns})


async def list_conversations(conn: AsyncConnection, *, namespace: str, caller: str, limit: int = 50,
                             offset: int = 0) -> list[dict[str, Any]]:
    """This caller's conversations in the namespace, the most recently active first."""
    cur = await conn.execute(_LIST, {"namespace": namespace, "caller": caller, "limit": limit, "offset": offset})
    return [{"conversation_id": row[0], "title": row[1], "created_at": row[2].isoformat(),
             "updated_at": row[3].isoformat(), "turns": row[4]} for row in await cur.fetchall()]


async def delete_conversation(conn: AsyncConnection, conversation_id: str, *, namespace: str,
                              caller: str) -> int | None:
    """Delete a conversation and its turns; the number of turns, or None when there was none."""
    cur = await conn.execute(_DELETE, _scope(check_conversation_id(conversation_id), namespace, caller))
    row = await cur.fetchone()
    return None if row is None else int(row[0])
