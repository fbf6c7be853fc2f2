"""Statement and lock timeouts on every pooled statement, set per transaction so poolers keep them.

Behind a transaction pooler (PgBouncer in transaction mode, Neon, Supabase) a session `SET` lands
on whichever server connection ran it and stays there for the next client, and startup options
are refused or dropped. So the timeouts are set with `set_config(..., true)` (`SET LOCAL`), which
lasts until the end of the current transaction and no longer:

- an explicit transaction (`async with conn.transaction()`) sets them right after `BEGIN`;
- a statement outside one (autocommit) is pipelined behind the `set_config` with no `Sync`
  between them, so both run in one implicit transaction: no extra round trip.

The database's answers to them become our errors at the seam: a statement cancelled by the
statement timeout is a 504 `database_timeout`, a lock wait that ran out a 503 `database_busy`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, AsyncTransaction
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from lib import errors

SET_TIMEOUTS = ("SELECT set_config('statement_timeout', %s, true),"
                " set_config('lock_timeout', %s, true)")


class TimedCursor(AsyncCursor):
    """A cursor whose autocommit statements carry the connection's timeouts."""

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> TimedCursor:
        conn = self.connection
        timeouts = getattr(conn, "timeouts", None)
        if (timeouts is None or not conn.autocommit or query == ""
                or conn.info.transaction_status != TransactionStatus.IDLE
                or conn.pgconn.pipeline_status):
            await super().execute(query, params, **kwargs)
            return self
        async with conn.pipeline():
            await AsyncCursor(conn).execute(SET_TIMEOUTS, timeouts)
            await super().execute(query, params, **kwargs)
        return self


class TimedConnection(AsyncConnection):
    """A pooled connection: `timeouts` (statement, lock; milliseconds as strings) apply to every
    transaction and every autocommit statement. Without `timeouts` it is a plain connection."""

    timeouts: tuple[str, str] | None = None
    returned_at = 0.0  # when it last went back to the pool (time.monotonic()), for its check

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = TimedCursor

    @asynccontextmanager
    async def transaction(self, savepoint_name: str | None = None,
                          force_rollback: bool = False) -> AsyncIterator[AsyncTransaction]:
        outermost = self.info.transaction_status == TransactionStatus.IDLE
        async with super().transaction(savepoint_name, force_rollback) as tx:
            if outermost and self.timeouts is not None:
                await AsyncCursor(self).execute(SET_TIMEOUTS, self.timeouts)
            yield tx


def timeouts_for(statement_timeout_ms: int, lock_timeout_ms: int) -> tuple[str, str]:
    return str(max(0, statement_timeout_ms)), str(max(0, lock_timeout_ms))


def database_error(exc: BaseException) -> errors.ApiError | None:
    """Our error for a timeout the database raised, or None when `exc` is something else."""
    if isinstance(exc, pg_errors.QueryCanceled):
        return errors.DatabaseTimeout(
            "the database did not finish in time (statement timeout); try a narrower request")
    if isinstance(exc, pg_errors.LockNotAvailable):
        return errors.DatabaseBusy("the data this request needs is locked by other work; retry shortly")
    return None
