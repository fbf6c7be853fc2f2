"""pgvector's `vector` and `halfvec` through pgvector-python's adapters, registered by
`lib/db/vector.py`: parameters (pgvector types and numpy arrays), binary COPY and results in text
and binary, halfvec casts, what is refused, and the HNSW index still matching."""

from __future__ import annotations

import random
import struct
from dataclasses import replace

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector, Vector
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lib import db
from lib.config import get_settings
from lib.db.vector import register_vector, to_vector
from tests.conftest import run_async


def float32(values: list[float]) -> list[float]:
    """What Postgres stores for `values`: each rounded to the nearest float32."""
    f32 = struct.Struct(f"{len(values)}f")
    return list(f32.unpack(f32.pack(*values)))


def sample(dimensions: int, seed: int, largest: int = 6) -> list[float]:
    """Values of many magnitudes up to 10**largest, so a formatting or rounding slip shows."""
    rng = random.Random(seed)
    return [rng.uniform(-1, 1) * 10 ** rng.randint(-8, largest) for _ in range(dimensions)]


def old_literal(values: list[float]) -> str:
    """The text the hand formatters sent before the adapter (search's `repr` form)."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def test_to_vector_takes_any_sequence_of_floats() -> None:
    expected = Vector([1.0, 0.5, -2.0])
    for values in ([1, 0.5, -2.0], (1, 0.5, -2.0), np.array([1, 0.5, -2.0]), expected):
        assert to_vector(values) == expected
    assert to_vector(np.array([1, 0.5, -2.0], dtype=np.float64)).to_numpy().dtype == np.float32


# --- parameters and results ------------------------------------------------------------------------


def test_parameters_and_results_round_trip_in_text_and_binary(database: str) -> None:
    values = sample(384, seed=1)

    async def main():
        async with db.connect() as conn:
            vector = Vector(values)
            array = np.array(values, dtype=np.float32)
            cur = await conn.execute("SELECT %s::vector, %b::vector, %t::vector, %s::vector",
                                     (vector, vector, vector, array))
            text_results = await cur.fetchone()
            cur = conn.cursor(binary=True)
            await cur.execute("SELECT %s::vector, %b::vector, %t::vector, %b::vector",
                              (vector, vector, vector, array))
            binary_results = await cur.fetchone()
            # the server reads the adapter's values as it read the hand-formatted literals
            cur = await conn.execute("SELECT %s = %s::text::vector, %s = %s::text::vector",
                                     (vector, old_literal(values), vector, "[" + ",".join(map(str, values)) + "]"))
            same_as_before = await cur.fetchone()
            return text_results, binary_results, same_as_before

    text_results, binary_results, same_as_before = run_async(main)
    expected = Vector(float32(values))
    assert all(isinstance(v, Vector) for v in text_results + binary_results)
    assert list(text_results) == [expected] * 4
    assert list(binary_results) == [expected] * 4
    assert text_results[0].to_numpy().tolist() == float32(values)
    assert same_as_before == (True, True)


def test_arrays_of_vectors(database: str) -> None:
    vectors = [Vector(sample(8, seed)) for seed in range(3)]

    async def main():
        async with db.connect() as conn:
            cur = await conn.execute("SELECT v FROM unnest(%s::vector[]) WITH ORDINALITY AS t(v, i) ORDER BY i",
                                     (vectors,))
            return [row[0] for row in await cur.fetchall()]

    assert run_async(main) == [Vector(float32(v.to_list())) for v in vectors]


@pytest.mark.parametrize("placeholder", ["%b", "%t"])
@pytest.mark.parametrize("value, message", [(float("nan"), "NaN not allowed in vector"),
                                            (float("-inf"), "infinite value not allowed in vector")])
def test_nan_and_infinity_are_refused_by_name(database: str, placeholder: str, value: float,
                                              message: str) -> None:
    async def main():
        async with db.connect() as conn:
            await conn.execute(f"SELECT {placeholder}::vector", (Vector([0.5, value]),))

    with pytest.raises(psycopg.errors.DataError, match=message):
        run_async(main)


@pytest.mark.parametrize("placeholder", ["%b", "%t"])
@pytest.mark.parametrize("size, message", [(0, "vector must have at least 1 dimension"),
                                           (16_001, "vector cannot have more than 16000 dimensions")])
def test_sizes_pgvector_cannot_hold_are_refused_by_name(database: str, placeholder: str, size: int,
                                                       message: str) -> None:
    async def main():
        async with await db.open_connection(database) as conn:
            await conn.execute(f"SELECT {placeholder}::vector", (Vector([0.5] * size),))

    # the binary reader says "program limit exceeded" (SQLSTATE 54000) where the text one says "data"
    with pytest.raises((psycopg.errors.DataError, psycopg.errors.ProgramLimitExceeded), match=message):
        run_async(main)


def test_wrong_dimensions_are_refused_by_the_typed_cast(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await conn.execute("SELECT %s::vector(3)", (Vector([1.0, 2.0]),))

    with pytest.raises(psycopg.errors.DataError, match="expected 3 dimensions, not 2"):
        run_async(main)


def test_halfvec_casts_read_as_the_text_literal_did(database: str) -> None:
    """Past 2,000 dimensions search casts the query to halfvec: a `Vector` cast there gives the
    same half floats as the text literal parsed as halfvec, as before the adapter."""
    samples = [sample(2048, seed, largest=4) for seed in range(5)]  # half floats end at 65,504

    async def main():
        async with db.connect() as conn:
            results = []
            for values in samples:
                cur = await conn.execute("SELECT %s::halfvec(2048)::text, %s::text::halfvec(2048)::text",
                                         (Vector(values), old_literal(values)))
                results.append(await cur.fetchone())
            return results

    for from_vector, from_literal in run_async(main):
        assert from_vector == from_literal


def test_halfvec_parameters_and_results_round_trip_in_text_and_binary(database: str) -> None:
    values = sample(2048, seed=7, largest=4)
    half = [float(v) for v in np.array(values, dtype=np.float16)]

    async def main():
        async with db.connect() as conn:
            results = []
            for binary in (False, True):
                cur = conn.cursor(binary=binary)
                await cur.execute("SELECT %s::halfvec, %b::halfvec, %t::halfvec, %s::text::halfvec",
                                  (HalfVector(values), HalfVector(values), HalfVector(values), old_literal(half)))
                results.append(await cur.fetchone())
            return results

    for row in run_async(main):
        assert all(isinstance(v, HalfVector) for v in row)
        assert [v.to_list() for v in row] == [half] * 4


# --- binary COPY ------------------------------------------------------------------------------------


def test_binary_copy_round_trip(database: str) -> None:
    # numpy rows, as ingestion writes them, and pgvector's own type
    rows = [(i, np.array(sample(384, seed=10 + i), dtype=np.float32) if i % 2 else Vector(sample(384, seed=10 + i)))
            for i in range(20)]

    async def main():
        async with db.connect() as conn:
            await conn.execute("CREATE TABLE copied (id int PRIMARY KEY, embedding vector)")
            async with conn.cursor() as cur:
                async with cur.copy("COPY copied (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int4", "vector"])
                    for row in rows:
                        await copy.write_row(row)
                async with cur.copy("COPY copied (id, embedding) TO STDOUT (FORMAT BINARY)") as copy:
                    copy.set_types(["int4", "vector"])
                    copied_out = sorted([row async for row in copy.rows()])
            cur = await conn.execute("SELECT id, embedding FROM copied ORDER BY id")
            return copied_out, await cur.fetchall()

    copied_out, selected = run_async(main)
    expected = [(i, Vector(float32(sample(384, seed=10 + i)))) for i in range(20)]
    assert copied_out == expected and selected == expected


def test_copy_of_nan_is_refused_by_name(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await conn.execute("CREATE TABLE refused (embedding vector)")
            async with conn.cursor() as cur:
                async with cur.copy("COPY refused (embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["vector"])
                    await copy.write_row((Vector([0.5, 0.25]),))
                    await copy.write_row((Vector([0.5, float("nan")]),))

    with pytest.raises(psycopg.errors.DataError, match="NaN not allowed in vector"):
        run_async(main)


def test_copy_of_a_wrong_dimension_fails_the_partial_index_expression(database: str) -> None:
    async def main():
        async with db.connect() as conn:
            await conn.execute("CREATE TABLE indexed (model text, embedding vector)")
            await conn.execute("CREATE INDEX ON indexed USING hnsw ((embedding::vector(3)) vector_cosine_ops)"
                               " WHERE model = 'three'")
            async with conn.cursor() as cur:
                async with cur.copy("COPY indexed (model, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "vector"])
                    await copy.write_row(("two", Vector([1.0, 2.0])))  # outside the index: any size
                    await copy.write_row(("three", Vector([1.0, 2.0])))

    with pytest.raises(psycopg.errors.DataError, match="expected 3 dimensions, not 2"):
        run_async(main)


# --- search still uses the model's HNSW index --------------------------------------------------------


class RecordingConnection:
    """Passes a connection through, keeping the statements it runs."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.statements: list[tuple] = []

    def transaction(self):
        return self.conn.transaction()

    async def execute(self, query, params=None):
        self.statements.append((query, params))
        return await self.conn.execute(query, params)


@pytest.mark.parametrize("dimensions", [16, 2048])
def test_vector_search_can_use_the_models_hnsw_index(database: str, dimensions: int) -> None:
    """The statement search runs, with its `Vector` parameter, matches the partial index
    expression (`vector(D)`, or `halfvec(D)` past 2,000 dimensions). Sorting is switched off so
    that the index providing the order is the only plan that does not need a disabled node."""
    from lib.ingest.vector_index import ensure_vector_index, vector_index_name
    from lib.retrieval.search import SearchOptions, vector_ranking_for_model

    model = f"local/hash-{dimensions}"

    async def main():
        async with db.connect() as conn:
            await ensure_vector_index(conn, model, dimensions)
            await conn.execute(
                "INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model)"
                " VALUES (%s, 'random.txt', 'text/plain', 'x', %s)", (model, model))
            await conn.execute(
                "INSERT INTO chunks (document_id, namespace, position, text, content_hash, token_count,"
                " char_start, char_end, metadata, embedding_model, embedding)"
                " SELECT d.id, d.namespace, g, 'chunk ' || g, 'h', 2, 0, 1, '{}', d.embedding_model,"
                "  (SELECT array_agg(random() - 0.5 + i * 0 + g * 0) FROM generate_series(1, %s) i)::vector"
                " FROM documents d, generate_series(0, 49) g WHERE d.namespace = %s", (dimensions, model))
            recorder = RecordingConnection(conn)
            hits = await vector_ranking_for_model(recorder, sample(dimensions, seed=3, largest=0), model,
                                                  SearchOptions(namespace=model), 5)
            query, params = recorder.statements[-1]
            assert isinstance(params["vector"], Vector)
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_sort = off")
                cur = await conn.execute(pgsql.SQL("EXPLAIN ") + query, params)
                plan = "\n".join(row[0] for row in await cur.fetchall())
            return hits, plan

    hits, plan = run_async(main)
    assert len(hits) == 5
    assert f"Index Scan using {vector_index_name(model)}" in plan, plan


# --- registration ------------------------------------------------------------------------------------


def test_a_fresh_database_gets_the_adapter_once_migrated(database: str) -> None:
    """Connections opened before the migrations that install pgvector are replaced, so the first
    request on a new database can already pass vectors; raw connections get it too. Before them,
    registering finds no `vector` type and says so instead of failing."""
    name = f"{conninfo_to_dict(database)['dbname']}_fresh"
    fresh = make_conninfo(database, dbname=name)
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    settings = replace(get_settings(), database_url=fresh)

    async def main():
        async with await psycopg.AsyncConnection.connect(fresh, autocommit=True) as conn:
            assert await register_vector(conn) is False
        async with db.connect(settings) as conn:
            cur = await conn.execute("SELECT %s::vector", (Vector([0.25, 0.5]),))
            pooled = (await cur.fetchone())[0]
        async with await db.open_connection(fresh) as conn:
            cur = await conn.execute("SELECT %s::vector", (Vector([0.75]),))
            raw = (await cur.fetchone())[0]
        return pooled, raw

    try:
        assert run_async(main) == (Vector([0.25, 0.5]), Vector([0.75]))
    finally:
        db.forget_database(fresh)
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


def round_trips(trace: str) -> int:
    """Messages after which the client waits for the server: Sync ends an extended-protocol
    statement, Query is a simple one (libpq trace lines: time, direction, length, message)."""
    return sum(1 for line in trace.splitlines()
               if line.split("\t")[1:2] == ["F"] and line.split("\t")[3:4] in (["Sync"], ["Query"]))


def test_registration_is_one_round_trip_where_pgvector_python_takes_twelve(database: str, tmp_path) -> None:
    """Every new pooled connection registers the types before its first request: one query. The
    library's own `register_vector_async` fetches four types, each in a transaction of its own."""
    from pgvector.psycopg import register_vector_async

    async def traced(register) -> int:
        async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
            path = tmp_path / register.__module__
            with path.open("w") as trace:
                conn.pgconn.trace(trace.fileno())
                await register(conn)
                conn.pgconn.untrace()
            cur = await conn.execute("SELECT %s::vector, %s::halfvec", (Vector([0.5]), HalfVector([0.5])))
            assert await cur.fetchone() == (Vector([0.5]), HalfVector([0.5]))
            return round_trips(path.read_text())

    assert run_async(lambda: traced(register_vector)) == 1
    assert run_async(lambda: traced(register_vector_async)) == 12
