"""Postgres: migrations exactly once (even concurrently), the health report, clear 503s."""

from __future__ import annotations

import asyncio

import psycopg

from lib import db
from lib.config import get_settings


def test_health_reports_postgres_and_pgvector_versions(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok" and report["database"] == "ok"
    assert report["pgvector_version"].startswith("0.")
    assert int(report["postgres_version"].split(".")[0]) >= 15
    assert response.headers["x-request-id"]


def test_migrations_apply_once_even_when_two_instances_start_together(database):
    async def run() -> list[list[str]]:
        async def one() -> list[str]:
            conn = await psycopg.AsyncConnection.connect(database, **db.connection_kwargs())
            async with conn:
                await conn.execute("DELETE FROM schema_migrations WHERE version = '001_core'")
                return await db.apply_migrations(conn)

        # the first call removes the row and re-applies; then two run at once
        await one()
        conn = await psycopg.AsyncConnection.connect(database, **db.connection_kwargs())
        async with conn:
            await conn.execute("DELETE FROM schema_migrations WHERE version = '001_core'")

        async def apply_only() -> list[str]:
            c = await psycopg.AsyncConnection.connect(database, **db.connection_kwargs())
            async with c:
                return await db.apply_migrations(c)

        return await asyncio.gather(apply_only(), apply_only())

    results = asyncio.run(run())
    assert sorted(map(len, results)) == [0, 1]  # exactly one of them applied it
    with psycopg.connect(database) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [p.stem for p in db.migration_files()]


def test_unreachable_database_is_503_database_unavailable(client, env):
    env(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none", DATABASE_CONNECT_TIMEOUT_S="1")
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "unavailable" and body["status"] == "error"
    assert "nobody" not in response.text


def test_on_vercel_a_missing_database_url_is_a_configuration_error(client, env):
    env(DATABASE_URL=None, VERCEL="1")
    response = client.get("/api/health")
    assert response.status_code == 503
    assert "DATABASE_URL" in response.json()["reason"]


def test_pooled_connections_never_prepare_statements(database):
    async def run() -> object:
        async with db.connect(get_settings()) as conn:
            for _ in range(10):  # past psycopg's default threshold of 5
                await conn.execute("SELECT %s::int", (1,))
            cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
            row = await cur.fetchone()
        await db.close_pools()
        return row[0]

    assert asyncio.run(run()) == 0
