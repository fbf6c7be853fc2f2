"""pgvector's `vector` and `halfvec` for psycopg, with pgvector-python's own types and adapters,
registered once per connection by `register_vector` (the pool's `configure` callback, and
`db.open_connection`).

    await conn.execute("SELECT embedding <=> %s FROM chunks", (Vector(values),))
    copy.set_types([..., "vector"]); await copy.write_row((..., numpy_row))

Parameters may be `pgvector.Vector`, `pgvector.HalfVector` or a 1-D numpy array (sent as `vector`);
`to_vector` makes a `Vector` of any sequence of floats. Parameters and binary COPY travel in
pgvector's binary format; `vector` results load as `pgvector.Vector` and `halfvec` results as
`pgvector.HalfVector`, in text and binary alike (`.to_numpy()`, `.to_list()`). NaN, infinity and
more than 16,000 dimensions are refused by pgvector itself, by name (a `DataError`; the binary
reader's dimension limit is a `ProgramLimitExceeded`), so the embedders check providers' answers
before they get this far (`lib/ingest/embedders/openai_wire.py`).

This module imports psycopg at the top: import it only on paths that talk to the database.
pgvector-python does not import numpy unless a numpy array is passed to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pgvector import Vector
from psycopg.types import TypeInfo

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# One query for both types. pgvector-python's `register_vector_async` calls `TypeInfo.fetch` four
# times (vector, bit, halfvec, sparsevec), and each fetch on an autocommit connection wraps its
# query in a transaction: twelve round trips on every new connection, where this is one.
_TYPES_SQL = ("SELECT typname, oid, typarray FROM pg_type"
              " WHERE oid IN (to_regtype('vector'), to_regtype('halfvec'))")


def to_vector(values: Sequence[float] | Any) -> Vector:
    """A pgvector `Vector` of a list, tuple, 1-D numpy array or `Vector` of floats."""
    if isinstance(values, Vector):
        return values
    if isinstance(values, list) or type(values).__module__ == "numpy":
        return Vector(values)
    return Vector(list(values))


async def register_vector(conn: AsyncConnection) -> bool:
    """Teach `conn` pgvector's `vector` and `halfvec`: parameters, COPY values and results.

    Returns False, registering nothing, while the database has no pgvector yet (a fresh database
    before its migrations). The types' oids come from one query; the dumpers and loaders are
    pgvector-python's, registered by its own functions (binary first for `%s`, names for
    `set_types`, and numpy arrays dumped as `vector`).
    """
    from pgvector.psycopg.halfvec import register_halfvec_info
    from pgvector.psycopg.vector import register_vector_info

    cur = await conn.execute(_TYPES_SQL)
    found = {name: (oid, array_oid) for name, oid, array_oid in await cur.fetchall()}
    if "vector" not in found:
        return False
    register_vector_info(conn, TypeInfo("vector", *found["vector"], regtype="vector"))
    if "halfvec" in found:  # pgvector 0.7 and later
        register_halfvec_info(conn, TypeInfo("halfvec", *found["halfvec"], regtype="halfvec"))
    return True
