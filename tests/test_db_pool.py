"""The pool under pressure: a busy pool and a lock wait are 503 `database_busy` with `retry-after`,
a statement past its timeout is a 504 `database_timeout`, and the timeouts never outlive their
transaction on the server connection."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from pgvector import Vector
from psycopg import AsyncCursor

from lib import db, deadline, errors
from lib.config import get_settings
from tests.conftest import run_async


@pytest.fixture
def own_pool(database: str, env) -> Iterator[callable]:
    """`own_pool(name, **env)`: point this test at its own pool (a distinct URL keys a fresh pool,
    built with the settings given) on the module's database."""
    urls: list[str] = []

    def configure(name: str, **values: str) -> str:
        url = f"{database} application_name={name}"
        urls.append(url)
        env(DATABASE_URL=url, **values)
        return url

    yield configure
    for url in urls:
        db.forget_database(url)


@contextmanager
def table_locked(database: str, table: str) -> Iterator[psycopg.Connection]:
    """Hold an ACCESS EXCLUSIVE lock on `table` from outside the pool until the block ends."""
    with psycopg.connect(database) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield conn
        conn.rollback()


def waiting_on_locks(database: str, application_name: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND application_name = %s", (application_name,)).fetchone()[0]


def assert_clean_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["request_id"] == response.headers["x-request-id"]
    for leak in ("SELECT", "documents", "psycopg", "Traceback", "canceling statement"):
        assert leak not in response.text
    return error


def test_a_statement_past_its_timeout_is_a_504_with_the_error_envelope(client, database, own_pool) -> None:
    own_pool("stmt_timeout", DATABASE_STATEMENT_TIMEOUT_MS="300", DATABASE_LOCK_TIMEOUT_MS="0")
    assert client.get("/api/upload", params={"namespace": "t"}).status_code == 200  # pool warm
    with table_locked(database, "documents"):
        started = time.monotonic()
        response = client.get("/api/upload", params={"namespace": "t"})
        elapsed = time.monotonic() - started
    error = assert_clean_envelope(response, 504, "database_timeout")
    assert "statement timeout" in error["message"]
    assert 0.3 <= elapsed < 5


def test_a_lock_wait_that_runs_out_is_503_database_busy_with_retry_after(client, database, own_pool) -> None:
    own_pool("lock_timeout", DATABASE_LOCK_TIMEOUT_MS="200")
    assert client.get("/api/upload", params={"namespace": "t"}).status_code == 200
    with table_locked(database, "documents"):
        response = client.get("/api/upload", params={"namespace": "t"})
    assert_clean_envelope(response, 503, "database_busy")
    assert response.headers["retry-after"] == "1"
    assert client.get("/api/upload", params={"namespace": "t"}).status_code == 200  # and then it works


def test_an_exhausted_pool_is_503_database_busy_after_the_wait_bound(client, database, own_pool,
                                                                      server_url: str) -> None:
    import httpx

    own_pool("exhausted", DATABASE_POOL_SIZE="2", DATABASE_POOL_WAIT_S="0.5",
             DATABASE_LOCK_TIMEOUT_MS="0", DATABASE_STATEMENT_TIMEOUT_MS="0")
    assert client.get("/api/upload", params={"namespace": "t"}).status_code == 200
    held: list[int] = []

    def hold_a_connection() -> None:
        with httpx.Client(base_url=server_url, timeout=30) as other:
            held.append(other.get("/api/upload", params={"namespace": "t"}).status_code)

    with table_locked(database, "documents"):
        holders = [threading.Thread(target=hold_a_connection) for _ in range(2)]
        for thread in holders:
            thread.start()
        deadline_at = time.monotonic() + 10
        while waiting_on_locks(database, "exhausted") < 2:  # both pool connections are stuck
            assert time.monotonic() < deadline_at, "the holders never reached the lock"
            time.sleep(0.05)
        started = time.monotonic()
        response = client.get("/api/upload", params={"namespace": "t"})
        elapsed = time.monotonic() - started
        error = assert_clean_envelope(response, 503, "database_busy")
    for thread in holders:
        thread.join(timeout=10)
    assert response.headers["retry-after"] == "1"
    assert "in use" in error["message"] and "cannot be reached" not in error["message"]
    assert 0.5 <= elapsed < 3
    assert held == [200, 200]  # the requests that held the connections finish once the lock goes


def test_tasks_holding_a_connection_get_another_while_the_pool_is_exhausted(own_pool) -> None:
    """A hybrid search holds one connection and opens a second for its vector side: with every
    pooled connection lent to such tasks, queueing for the second would wait forever."""
    own_pool("nested", DATABASE_POOL_SIZE="2", DATABASE_POOL_WAIT_S="3")

    async def search_like(barrier: asyncio.Barrier) -> int:
        async with db.connect() as outer:
            await outer.execute("SELECT 1")
            await asyncio.wait_for(barrier.wait(), 5)  # both pooled connections are lent

            async def side() -> int:
                async with db.connect() as inner:  # knows pgvector's type, as a pooled one does
                    value = (await (await inner.execute("SELECT '[1]'::vector")).fetchone())[0]
                    return value.dimensions() if isinstance(value, Vector) else 0

            return sum(await asyncio.gather(side(), side()))

    async def run() -> tuple[list, float]:
        barrier = asyncio.Barrier(2)
        started = time.monotonic()
        results = await asyncio.gather(*(search_like(barrier) for _ in range(6)), return_exceptions=True)
        return results, time.monotonic() - started

    results, elapsed = run_async(run)
    assert results == [2] * 6
    assert elapsed < 3


def test_a_search_s_second_connection_is_pooled_and_kept_for_the_next_search(own_pool) -> None:
    """The vector side of a hybrid search takes a second connection: while the pool may grow, it
    is a pooled one, kept, so the next search does not pay for opening a connection again."""
    own_pool("second", DATABASE_POOL_SIZE="4")

    async def search_like() -> set[int]:
        async with db.connect() as outer:
            async with db.connect() as inner:
                return {(await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
                        for conn in (outer, inner)}

    async def run() -> tuple[set[int], set[int], int]:
        first, second = await search_like(), await search_like()
        return first, second, (await db.get_pool()).get_stats()["pool_size"]

    first, second, size = run_async(run)
    assert len(first) == 2 and second == first  # the same two server processes both times
    assert size == 2


def test_a_connection_the_server_dropped_while_idle_is_replaced_before_a_request_gets_it(
        database, own_pool, monkeypatch) -> None:
    own_pool("dropped_idle", DATABASE_POOL_SIZE="1")
    monkeypatch.setattr(db, "CHECK_AFTER_IDLE_S", 0.2)

    async def scenario() -> int:
        async with db.connect() as conn:
            await conn.execute("SELECT 1")
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE application_name = 'dropped_idle'")
        await asyncio.sleep(0.3)  # idle longer than CHECK_AFTER_IDLE_S: checked before it is lent
        async with db.connect() as conn:
            return (await (await conn.execute("SELECT 42")).fetchone())[0]

    assert run_async(scenario) == 42


def test_timeouts_apply_to_transactions_and_autocommit_statements_and_never_leak(database, env) -> None:
    env(DATABASE_STATEMENT_TIMEOUT_MS="200", DATABASE_LOCK_TIMEOUT_MS="150")

    async def slow_statement(in_transaction: bool) -> errors.ApiError | None:
        try:
            async with db.connect() as conn:
                if in_transaction:
                    async with conn.transaction():
                        await conn.execute("SELECT 1")
                        await conn.execute("SELECT pg_sleep(2)")
                else:
                    await conn.execute("SELECT pg_sleep(2)")
        except errors.ApiError as exc:
            return exc
        return None

    async def run() -> dict:
        seen: dict = {"autocommit": await slow_statement(False), "transaction": await slow_statement(True)}
        async with db.connect() as conn:
            cur = conn.cursor()  # cursors from the connection carry the timeouts too
            await cur.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
            seen["inside"] = await cur.fetchone()
            # a plain cursor runs without them: what a later client of this server connection sees
            plain = AsyncCursor(conn)
            await plain.execute("SELECT current_setting('statement_timeout'), current_setting('lock_timeout')")
            seen["after"] = await plain.fetchone()
        return seen

    seen = run_async(run)
    assert isinstance(seen["autocommit"], errors.DatabaseTimeout)
    assert isinstance(seen["transaction"], errors.DatabaseTimeout)
    assert seen["inside"] == ("200ms", "150ms")
    assert seen["after"] == ("0", "0")


def test_migrations_run_without_the_request_timeouts(database, env) -> None:
    async def forget_one() -> None:  # set up under the default timeouts, so a busy machine cannot fail it
        async with db.connect() as conn, conn.transaction():
            await conn.execute("DELETE FROM schema_migrations WHERE version = '001_core'")

    run_async(forget_one)
    env(DATABASE_STATEMENT_TIMEOUT_MS="1", DATABASE_LOCK_TIMEOUT_MS="1")

    async def run() -> list[str]:
        async with db.connect() as conn:
            return await db.apply_migrations(conn)

    assert run_async(run) == ["001_core"]


def test_the_pool_wait_is_the_rest_of_the_request_capped_by_the_setting(env) -> None:
    env(TOTAL_TIMEOUT_S="280", DATABASE_POOL_WAIT_S=None)

    async def within(seconds: float | None) -> float:
        if seconds is not None:
            deadline.start(seconds)
        return db.pool_wait_s(get_settings())

    assert asyncio.run(within(None)) == 280  # outside a request: the whole request budget
    assert 11 < asyncio.run(within(12)) <= 12  # a request with 12 s left waits at most that
    env(DATABASE_POOL_WAIT_S="0.5")
    assert asyncio.run(within(12)) == 0.5
    assert asyncio.run(within(0.2)) <= 0.2


# --- the usage ledger under pressure ------------------------------------------------------------


def ledger_rows(database: str, request_ids: list[str]) -> int:
    with psycopg.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM usage_ledger WHERE request_id = ANY(%s)",
                            (request_ids,)).fetchone()[0]


def test_ledger_rows_are_written_when_the_request_is_out_of_time_and_the_pool_busy(database, own_pool) -> None:
    from lib.providers.usage import UsageRecord, record_usage

    own_pool("ledger_late", DATABASE_POOL_SIZE="2")
    request_ids = [f"late-{i}-{uuid.uuid4().hex[:8]}" for i in range(20)]

    async def run() -> None:
        holding, release = asyncio.Event(), asyncio.Event()
        held = 0

        async def hold() -> None:  # other requests keep every pooled connection busy a moment
            nonlocal held
            async with db.connect() as conn:
                await conn.execute("SELECT 1")
                held += 1
                if held == 2:
                    holding.set()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await asyncio.wait_for(holding.wait(), 10)
        deadline.start(0.0)  # this request has no time left when its answers are booked
        asyncio.get_running_loop().call_later(0.3, release.set)
        await asyncio.gather(*(record_usage(UsageRecord(provider="local", model="echo", request_id=r))
                               for r in request_ids))
        await asyncio.gather(*holders)

    run_async(run)
    assert ledger_rows(database, request_ids) == len(request_ids)


def test_ledger_writes_retry_a_lock_wait_that_ran_out_and_count_spend_once(database, own_pool) -> None:
    from lib.providers.usage import UsageRecord, record_usage, user_scope

    own_pool("ledger_locked", DATABASE_LOCK_TIMEOUT_MS="200")
    first = f"spend-{uuid.uuid4().hex[:8]}"
    run_async(lambda: record_usage(UsageRecord(provider="openai", model="gpt-4o-mini", request_id=first,
                                               cost_usd=0.5, user_id="locked-user")))
    request_ids = [f"locked-{i}-{uuid.uuid4().hex[:8]}" for i in range(10)]
    spent = f"SELECT spent_usd FROM spend_counters WHERE scope = '{user_scope(None, 'locked-user')}' AND period = 'day'"
    with psycopg.connect(database) as holder:
        before = holder.execute(spent).fetchone()[0]
        holder.execute(spent + " FOR UPDATE")  # every costed write waits on this row past its lock timeout
        done = threading.Thread(target=run_async, args=(lambda: asyncio.gather(*(
            record_usage(UsageRecord(provider="openai", model="gpt-4o-mini", request_id=r, cost_usd=0.25,
                                     user_id="locked-user")) for r in request_ids)),))
        done.start()
        time.sleep(0.5)
        holder.rollback()
    done.join(timeout=30)
    assert ledger_rows(database, request_ids) == len(request_ids)
    with psycopg.connect(database) as conn:
        after = conn.execute(spent).fetchone()[0]
    assert float(after - before) == 2.5  # each row's spend counted once, retries included
