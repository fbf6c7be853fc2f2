"""The response cache: complete answers in Postgres, keyed by a hash of everything that shapes them.

Same caller, same model chain, same messages and parameters -> the same key. Entries live for
`CACHE_TTL_S`; expired ones are ignored on read and deleted now and then on write.
"""

from __future__ import annotations

import hashlib
import json
from random import Random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

_GET = "SELECT response FROM response_cache WHERE cache_key = %(key)s AND expires_at > now()"
_PUT = """
INSERT INTO response_cache (cache_key, model, response, expires_at)
VALUES (%(key)s, %(model)s, %(response)s, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (cache_key) DO UPDATE
SET model = EXCLUDED.model, response = EXCLUDED.response, created_at = now(), expires_at = EXCLUDED.expires_at
"""
_FORGET_EXPIRED = "DELETE FROM response_cache WHERE expires_at < now()"

# Our own generator: drawing from the global one would change the state an application seeded.
_coin = Random()


def cache_key(parts: dict[str, Any]) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def cached_response(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    cur = await conn.execute(_GET, {"key": key})
    row = await cur.fetchone()
    return row[0] if row else None


async def store_response(conn: AsyncConnection, key: str, model: str, response: dict[str, Any],
                         ttl_s: int) -> None:
    from psycopg.types.json import Jsonb

    await conn.execute(_PUT, {"key": key, "model": model, "response": Jsonb(response), "ttl": ttl_s})
    if _coin.random() < 0.05:
        await conn.execute(_FORGET_EXPIRED)
