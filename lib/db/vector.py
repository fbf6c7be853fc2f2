"""pgvector's `vector` for psycopg: the `Vector` value type and its adapters, registered once per
connection by `register_vector` (the pool's `configure` callback, and `db.open_connection`).

    await conn.execute("SELECT embedding <=> %s FROM chunks", (Vector(values),))
    copy.set_types([..., "vector"]); await copy.write_row((..., Vector(values)))

Parameters and binary COPY travel in pgvector's binary format (int16 dimensions, int16 unused,
then one big-endian float32 per dimension); results load as `Vector` in text and binary alike.
There is no `HalfVector`: `halfvec` only appears as a cast past 2,000 dimensions (a model's index
expression and the query that must match it), and `%s::halfvec(D)` on a `Vector` gives the same
half floats as parsing the text literal as `halfvec`, since pgvector reads halfvec text through
float32 too.

This module imports psycopg at the top: import it only on paths that talk to the database.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, overload

from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo

if TYPE_CHECKING:
    from psycopg import AsyncConnection

MAX_DIMENSIONS = 16_000  # pgvector's limit for `vector`
_HEADER = struct.Struct(">HH")


class Vector(Sequence[float]):
    """A pgvector `vector`: one number per dimension, stored by Postgres as float32.

    NaN and infinity are left to pgvector, which refuses them by name ("NaN not allowed in
    vector") in text and binary alike: checking each value here would cost the bulk COPY of
    chunks more than packing them does.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[float]) -> None:
        values = tuple(values)
        if not 1 <= len(values) <= MAX_DIMENSIONS:
            raise ValueError(f"a vector has 1 to {MAX_DIMENSIONS} dimensions, not {len(values)}")
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[float, ...]: ...
    def __getitem__(self, index: int | slice) -> float | tuple[float, ...]:
        return self._values[index]

    def __iter__(self) -> Iterator[float]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vector):
            return NotImplemented
        return self._values == other._values

    __hash__ = None  # type: ignore[assignment]  # equal by value, like the list it stands for

    def __repr__(self) -> str:
        return f"Vector({list(self._values)!r})"

    def tolist(self) -> list[float]:
        return list(self._values)


@lru_cache(maxsize=16)
def _binary_layout(dimensions: int) -> struct.Struct:
    return struct.Struct(f">HH{dimensions}f")


# --- adapters ------------------------------------------------------------------------------------


class VectorTextDumper(Dumper):
    format = Format.TEXT

    def dump(self, obj: Vector) -> bytes:
        return ("[" + ",".join(repr(float(v)) for v in obj) + "]").encode()


class VectorBinaryDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Vector) -> bytes:
        values = obj._values  # the tuple itself: unpacking it is the fast path
        return _binary_layout(len(values)).pack(len(values), 0, *values)


class VectorTextLoader(Loader):
    format = Format.TEXT

    def load(self, data: Buffer) -> Vector:
        # Postgres prints the shortest decimal that reads back as the same float32; round it to
        # float32 again so text and binary results hold the same numbers.
        values = [float(v) for v in bytes(data)[1:-1].split(b",")]
        f32 = struct.Struct(f"{len(values)}f")
        return Vector(f32.unpack(f32.pack(*values)))


class VectorBinaryLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> Vector:
        n, _ = _HEADER.unpack_from(data)
        return Vector(_binary_layout(n).unpack_from(data)[2:])


async def register_vector(conn: AsyncConnection) -> bool:
    """Teach `conn` the `vector` type: `Vector` parameters, COPY values and results.

    Returns False, registering nothing, while the database has no pgvector yet (a fresh database
    before its migrations). One query; `TypeInfo.fetch` would take three on an autocommit
    connection, as it wraps its query in a transaction.
    """
    cur = await conn.execute("SELECT oid, typarray FROM pg_type WHERE oid = to_regtype('vector')")
    row = await cur.fetchone()
    if row is None:
        return False
    oid, array_oid = row
    TypeInfo("vector", oid, array_oid, regtype="vector").register(conn)  # names it for set_types
    adapters = conn.adapters
    # Text first, so that binary is the one `%s` picks: compact, and no float formatting.
    adapters.register_dumper(Vector, type("VectorTextDumper", (VectorTextDumper,), {"oid": oid}))
    adapters.register_dumper(Vector, type("VectorBinaryDumper", (VectorBinaryDumper,), {"oid": oid}))
    adapters.register_loader(oid, VectorTextLoader)
    adapters.register_loader(oid, VectorBinaryLoader)
    return True
