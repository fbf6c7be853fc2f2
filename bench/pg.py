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


def scale_settings() -> dict[str, str]:
    """What docs/scaling.md gives a Postgres holding a million chunks, for this machine: a quarter
    of memory as `shared_buffers` (at most 8 GB), three quarters as `effective_cache_size`, and
    WAL room for bulk loads."""
    memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    return {"shared_buffers": f"{min(memory_mb // 4, 8192)}MB", "effective_cache_size": f"{memory_mb * 3 // 4}MB",
            "max_wal_size": "8GB", "checkpoint_timeout": "15min"}


SCALE_DATA = PROJECT_ROOT / "bench" / ".data" / "pg-scale"


def scale_server_url() -> str:
    """`DATABASE_URL` when set (its own settings); else an embedded server of the benchmarks' own in
    bench/.data/pg-scale with `scale_settings()`, restarted once to apply them. The development
    server keeps Postgres's defaults (128 MB of `shared_buffers`), sized for a laptop, not a
    million chunks."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    import warnings

    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        SCALE_DATA.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(SCALE_DATA, cleanup_mode=None)  # left running, its cache warm
    wanted = scale_settings()
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        current = {name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in wanted}
        stale = {name: value for name, value in wanted.items() if _normalized(current[name]) != _normalized(value)}
        for name, value in stale.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    if stale:  # shared_buffers takes a restart: a fast shutdown, then started again as before
        import signal

        import psutil

        postmaster = psutil.Process(server.get_pid())
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(timeout=60)
        server.ensure_postgres_running()
    return server.get_uri()


def _normalized(value: str) -> str:
    """Postgres shows 2048MB as 2GB and 900s as 15min: compare in one unit."""
    units = {"kB": 1, "MB": 1024, "GB": 1024**2, "ms": 1, "s": 1000, "min": 60_000}
    for unit, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if value.endswith(unit) and value[: -len(unit)].isdigit():
            return str(int(value[: -len(unit)]) * factor)
    return value


def with_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


def fresh_database(name: str, admin: str | None = None) -> str:
    """Drop and recreate `bench_<name>` (on `admin`'s server, else `server_url()`'s) with every
    migration applied; returns its URL."""
    import psycopg

    dbname = f"bench_{name}"
    admin = admin or server_url()
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
