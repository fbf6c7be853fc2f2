"""A Postgres database of the benchmarks' own, so runs never touch development or test data.

The server is `DATABASE_URL` when set, else the embedded one the project starts for `make dev`.
`fresh_database("gateway")` drops and recreates `bench_gateway`, applies the migrations and
returns its URL.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


def server_url() -> str:
    """The URL of the Postgres server to create benchmark databases on."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    from lib import config, db

    return db.embedded_database_url(config.get_settings())


def with_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


def fresh_database(name: str) -> str:
    """Drop and recreate `bench_<name>` with every migration applied; returns its URL."""
    import psycopg

    dbname = f"bench_{name}"
    admin = server_url()
    with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    url = with_dbname(admin, dbname)
    asyncio.run(_migrate(url))
    return url


async def _migrate(url: str) -> None:
    import psycopg

    from lib import db

    async with await psycopg.AsyncConnection.connect(url, **db.connection_kwargs()) as conn:
        await db.apply_migrations(conn)


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(server_url(), autocommit=True, prepare_threshold=None) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "bench_{name}" WITH (FORCE)')
