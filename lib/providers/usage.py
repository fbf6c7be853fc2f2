"""The usage ledger: one row per provider attempt (chat or embedding), failed ones included.

Every row with a cost also adds to the day and month spend counters (globally, for anonymous
callers together, and for the user) in the same statement, which is what budgets read (see
`lib/gateway/budgets.py`).

    await record_usage(UsageRecord(provider="openai", model="gpt-4o-mini", kind="embedding",
                                   status="ok", input_tokens=120, cost_usd=0.0000024,
                                   latency_ms=85.0, request_id=request.request_id))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from lib import deadline, errors
from lib.config import Settings
from lib.logs import log, scrub


@dataclass
class UsageRecord:
    """One ledger row. `status` is 'ok', 'error' or 'cached'; `cost_usd` None means unknown price."""

    provider: str
    model: str
    kind: str = "chat"  # 'chat' | 'embedding'
    status: str = "ok"
    attempt: int = 1
    request_id: str | None = None
    user_id: str | None = None
    caller: str | None = None
    error_code: str | None = None
    http_status: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float | None = None
    cache_hit: bool = False
    streamed: bool = False
    prompt_name: str | None = None  # the stored prompt the call ran (lib/prompts), if any
    prompt_version: int | None = None


LEDGER_WAIT_S = 30.0  # for a pooled connection, however little time the request has left
LEDGER_ATTEMPTS = 3

# The row and its spend in one statement: one round trip and one commit before the answer goes
# out, and both are written or neither (a data-modifying WITH runs whether or not the rest reads
# it). A row without a cost adds to no counter.
_RECORD = """
WITH ledger_row AS (
    INSERT INTO usage_ledger (request_id, user_id, caller, provider, model, kind, attempt, status,
                              error_code, http_status, input_tokens, output_tokens, cached_tokens,
                              cost_usd, latency_ms, cache_hit, streamed, prompt_name, prompt_version)
    VALUES (%(request_id)s, %(user_id)s, %(caller)s, %(provider)s, %(model)s, %(kind)s, %(attempt)s,
            %(status)s, %(error_code)s, %(http_status)s, %(input_tokens)s, %(output_tokens)s,
            %(cached_tokens)s, %(cost_usd)s::numeric, %(latency_ms)s, %(cache_hit)s, %(streamed)s,
            %(prompt_name)s, %(prompt_version)s)
)
INSERT INTO spend_counters (scope, period, period_start, spent_usd)
SELECT scope, period, period_start, %(cost_usd)s::numeric
FROM unnest(%(scopes)s::text[]) AS scope,
     (VALUES ('day', %(day)s::date), ('month', %(month)s::date)) AS periods (period, period_start)
WHERE %(cost_usd)s::numeric > 0
ON CONFLICT (scope, period, period_start)
DO UPDATE SET spent_usd = spend_counters.spent_usd + EXCLUDED.spent_usd
"""


def spend_periods(now: datetime) -> list[tuple[str, date]]:
    """The (period, start) pairs a moment counts towards: its UTC day and its UTC month."""
    today = now.astimezone(UTC).date()
    return [("day", today), ("month", today.replace(day=1))]


def user_scope(caller: str | None, user_id: str) -> str:
    """The subject of one end user's budget and rate limit. A user id is a tenant's own name for a
    person (two API keys may both have a user "42"), so it only means something with its caller.
    A signed-in user is their own caller (`user:<issuer>/<id>`), so that is their scope."""
    if caller and caller.startswith("user:"):
        return caller
    return f"user:{caller or 'anonymous'}/{user_id}"


def is_anonymous(caller: str | None) -> bool:
    """Whether the edge let this caller in without credentials (ANONYMOUS_ROLE): `anon:<address>`."""
    return bool(caller and caller.startswith("anon:"))


def user_of_scope(scope: str) -> str:
    """The user id a `user_scope` was made from, for messages."""
    return scope.removeprefix("user:").partition("/")[2]


def spend_scopes(user_id: str | None, caller: str | None) -> list[str]:
    """Every counter a cost adds to: everyone's, anonymous callers' together, the user's."""
    return ["global"] + (["anonymous"] if is_anonymous(caller) else []) + \
        ([user_scope(caller, user_id)] if user_id else [])


async def record_usage(record: UsageRecord, *, settings: Settings | None = None) -> None:
    """Write one ledger row (and its spend). A ledger failure is logged, never raised: the
    answer the caller already paid for is not thrown away because bookkeeping failed.

    The write waits for a pooled connection even when the request has no time left, and is
    tried again when the database was busy or too slow (both roll back: nothing was written)."""
    for attempt in range(1, LEDGER_ATTEMPTS + 1):
        try:
            with deadline.at_least(LEDGER_WAIT_S):
                await _write(record, settings)
            return
        except (errors.DatabaseBusy, errors.DatabaseTimeout) as exc:
            failure: Exception = exc
            if attempt < LEDGER_ATTEMPTS:
                import asyncio  # only on this path: a cold import stays without it

                await asyncio.sleep(0.1 * 2 ** attempt)
                continue
        except Exception as exc:  # noqa: BLE001 - see docstring
            failure = exc
        log("error", "usage_ledger_write_failed", request_id=record.request_id, attempts=attempt,
            provider=record.provider, model=record.model, detail=scrub(repr(failure)))
        return


async def _write(record: UsageRecord, settings: Settings | None) -> None:
    from lib import db

    periods = dict(spend_periods(datetime.now(UTC)))
    async with db.connect(settings) as conn:
        await conn.execute(_RECORD, {**vars(record), "scopes": spend_scopes(record.user_id, record.caller),
                                     "day": periods["day"], "month": periods["month"]})
