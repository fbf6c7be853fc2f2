"""Each model's HNSW index by size: the parameters a size class picks, rebuilds off the request
path with search answering throughout, leftovers of interrupted builds, and the binary first pass."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from lib import db
from lib.config import get_settings
from lib.ingest.vector_index import (
    ensure_vector_index,
    existing_indexes,
    maintain_vector_indexes,
    size_class,
    vector_index_name,
    wanted_indexes,
)
from lib.retrieval.search import SearchOptions, search
from tests.conftest import ROOT
from tests.conftest import run_async as run

DIMS = 16


def test_size_classes_pick_larger_graphs_for_larger_models() -> None:
    small, large, huge = size_class(100_000), size_class(5_000_000), size_class(50_000_000)
    assert (small.m, small.ef_construction, small.ef_search) == (16, 64, 200)
    assert size_class(2_000_000) == small and size_class(2_000_001) == large
    assert (large.m, large.ef_construction, large.ef_search) == (24, 128, 300)
    assert (huge.m, huge.ef_construction, huge.ef_search) == (32, 200, 400)
    settings = get_settings()
    [spec] = wanted_indexes("m", 384, 5_000_000, settings)
    assert "WITH (m = 24, ef_construction = 128)" in spec.create_sql()
    assert "embedding::halfvec(384)) halfvec_cosine_ops" in spec.create_sql()  # the default storage
    from dataclasses import replace

    main, binary = wanted_indexes("m", 3072, 10, replace(settings, vector_binary_rerank=4))
    assert main.kind == "halfvec"  # past 2,000 dimensions whatever the setting
    assert "binary_quantize(embedding::vector(3072))::bit(3072)) bit_hamming_ops" in binary.create_sql()
    assert wanted_indexes("m", 4001, 10, settings) == []


def load(model: str, chunks: int = 2000) -> None:
    """A namespace named after the model, with `chunks` random vectors of DIMS dimensions."""

    async def main():
        async with db.connect() as conn:
            await conn.execute("SELECT setseed(0.42)")
            await conn.execute(
                "INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model, chunk_count)"
                " VALUES (%s, 'random.txt', 'text/plain', 'x', %s, %s)", (model, model, chunks))
            await conn.execute(
                "INSERT INTO chunks (document_id, namespace, position, text, content_hash, token_count,"
                " char_start, char_end, metadata, embedding_model, embedding)"
                " SELECT d.id, d.namespace, g, 'chunk ' || g, 'h', 2, 0, 1, '{}', d.embedding_model,"
                "  (SELECT array_agg(random() - 0.5 + i * 0 + g * 0) FROM generate_series(1, %s) i)::vector"
                " FROM documents d, generate_series(0, %s - 1) g WHERE d.namespace = %s",
                (DIMS, chunks, model))

    run(main)


QUERY = [0.3, -0.2, 0.1, 0.05] * (DIMS // 4)


async def nearest(model: str, exact: bool = False) -> list[int]:
    async with db.connect() as conn:
        options = SearchOptions(namespace=model, mode="vector", top_k=5, exact=exact)
        hits = await search(conn, "x", options, get_settings(), {model: QUERY})
    return [hit.chunk_id for hit in hits]


def create_index(model: str) -> None:
    """The model's index as a first upload creates it, with the settings in force."""

    async def create():
        async with db.connect() as conn:
            await ensure_vector_index(conn, model, DIMS, get_settings())

    run(create)


async def indexes(model: str) -> dict:
    async with db.connect() as conn:
        return await existing_indexes(conn, model)


def test_changing_the_storage_rebuilds_the_index_while_search_keeps_answering(database, env) -> None:
    model = "test/storage"
    env(VECTOR_INDEX_STORAGE="vector")

    create_index(model)
    load(model)
    assert run(lambda: indexes(model))[vector_index_name(model)].kind == "vector"
    env(VECTOR_INDEX_STORAGE="halfvec")

    async def rebuild_while_searching():
        build = asyncio.create_task(maintain_vector_indexes(get_settings()))
        answers = []
        while not build.done() or not answers:
            answers.append(await nearest(model))
            await asyncio.sleep(0.01)
        return await build, answers, await nearest(model), await nearest(model, exact=True)

    changes, answers, after, exact = run(rebuild_while_searching)
    assert [(c.action, c.kind) for c in changes] == [("rebuilt", "halfvec")]
    assert all(len(answer) == 5 for answer in answers)
    now = run(lambda: indexes(model))
    assert set(now) == {vector_index_name(model)}  # the new index under the old name, nothing left over
    assert (now[vector_index_name(model)].kind, now[vector_index_name(model)].valid) == ("halfvec", True)
    assert after == exact
    assert run(lambda: maintain_vector_indexes(get_settings())) == []  # nothing more to do


def test_an_interrupted_build_is_dropped_by_the_next_cron_run(database, env) -> None:
    """CREATE INDEX CONCURRENTLY that fails or is cancelled leaves an invalid index behind; the
    next run of the cron drops it, and search never used it."""
    from lib.reindex import run_reindex

    model = "test/interrupted"
    load(model, 200)

    async def interrupted_build():
        async with db.connect() as conn:
            await ensure_vector_index(conn, model, DIMS, get_settings())
        async with await db.open_connection(db.database_url()) as conn:
            await conn.execute("INSERT INTO documents (namespace, source, media_type, content_hash, embedding_model)"
                               " VALUES ('other', 'x', 'text/plain', 'x', 'test/eight')")
            await conn.execute(
                "INSERT INTO chunks (document_id, namespace, position, text, content_hash, token_count,"
                " char_start, char_end, metadata, embedding_model, embedding)"
                " SELECT id, 'other', 0, 'eight', 'h', 1, 0, 1, '{}', 'test/eight', '[1,2,3,4,5,6,7,8]'::vector"
                " FROM documents WHERE namespace = 'other'")
            try:  # the eight-dimensional chunk fails the build midway, as a timeout would end it
                await conn.execute(f"CREATE INDEX CONCURRENTLY {vector_index_name(model)}_n ON chunks"
                                   f" USING hnsw ((embedding::halfvec({DIMS})) halfvec_cosine_ops)")
            except Exception as exc:  # noqa: BLE001
                return str(exc)
        return "built"

    assert "expected 16 dimensions" in run(interrupted_build)
    leftover = run(lambda: indexes(model))[vector_index_name(model) + "_n"]
    assert not leftover.valid
    assert len(run(lambda: nearest(model))) == 5
    report = run(lambda: run_reindex(get_settings()))
    assert {"model": model, "index": leftover.name, "action": "dropped_leftover"}.items() <= next(
        change for change in report.vector_indexes if change["model"] == model).items()
    assert set(run(lambda: indexes(model))) == {vector_index_name(model)}


def test_the_cron_leaves_a_large_models_rebuild_to_the_command_line(database, env) -> None:
    model = "test/large"
    env(VECTOR_INDEX_STORAGE="vector")

    create_index(model)
    load(model, 300)
    env(VECTOR_INDEX_STORAGE="halfvec", VECTOR_INDEX_CRON_MAX_CHUNKS="100")
    from lib.reindex import run_reindex

    report = run(lambda: run_reindex(get_settings()))
    [due] = [change for change in report.vector_indexes if change["model"] == model]
    assert due["action"] == "due" and "python -m lib.cli vector-index" in due["note"]
    assert run(lambda: indexes(model))[vector_index_name(model)].kind == "vector"  # untouched, serving

    environment = {**os.environ, "VECTOR_INDEX_STORAGE": "halfvec", "LOG_LEVEL": "error"}
    done = subprocess.run([sys.executable, "-m", "lib.cli", "vector-index", "--model", model], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [rebuilt] = json.loads(done.stdout)
    assert (rebuilt["action"], rebuilt["kind"], rebuilt["chunks"]) == ("rebuilt", "halfvec", 300)
    assert 64 <= rebuilt["memory_mb"] <= get_settings().vector_index_build_memory_mb
    assert run(lambda: indexes(model))[vector_index_name(model)].kind == "halfvec"


def test_binary_first_pass_finds_what_exact_search_finds(database, env) -> None:
    from psycopg import sql as pgsql

    from lib.retrieval.search import vector_ranking_for_model

    model = "test/binary"
    load(model, 1000)
    env(VECTOR_BINARY_RERANK="10")
    changes = run(lambda: maintain_vector_indexes(get_settings(), models=[model]))
    assert sorted((c.action, c.kind) for c in changes) == [("built", "bit"), ("built", "halfvec")]

    class Recording:
        def __init__(self, conn):
            self.conn, self.statements = conn, []

        def transaction(self):
            return self.conn.transaction()

        async def execute(self, query, params=None):
            self.statements.append((query, params))
            return await self.conn.execute(query, params)

    async def ranked_and_planned():
        async with db.connect() as conn:
            recorder = Recording(conn)
            ranking = await vector_ranking_for_model(recorder, QUERY, model, SearchOptions(namespace=model), 5, 10)
            query, params = recorder.statements[-1]
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_sort = off")
                cur = await conn.execute(pgsql.SQL("EXPLAIN ") + query, params)
                plan = "\n".join(row[0] for row in await cur.fetchall())
        return [chunk_id for chunk_id, _ in ranking], plan

    ranking, plan = run(ranked_and_planned)
    assert f"Index Scan using {vector_index_name(model)}_b" in plan, plan
    assert ranking == run(lambda: nearest(model, exact=True))

    env(VECTOR_BINARY_RERANK="0")  # switched off: the binary index is dropped, search goes on
    changes = run(lambda: maintain_vector_indexes(get_settings(), models=[model]))
    assert [(c.action, c.kind) for c in changes] == [("dropped", "bit")]
    assert len(run(lambda: nearest(model))) == 5


def test_a_search_reading_the_catalog_while_a_rebuild_swaps_the_index_still_answers(database) -> None:
    """A search's snapshot can still list an index that a rebuild's swap has just dropped: what the
    search reads of it must come from that snapshot, not a fresh lookup that fails."""
    from lib.ingest.vector_index import search_index

    model = "test/swapped"

    async def main():
        async with db.connect() as other:
            await ensure_vector_index(other, model, DIMS, get_settings())
            async with await db.open_connection(database) as reader:
                async with reader.transaction():
                    await reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    await reader.execute("SELECT 1")  # the snapshot is taken here
                    await other.execute(f"DROP INDEX {vector_index_name(model)}")
                    return await search_index(reader, model, DIMS)

    index = run(main)
    assert index.kind == "halfvec"  # as the snapshot saw it
