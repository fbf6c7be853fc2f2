"""Each embedding model's HNSW index: its parameters by the model's size, how its vectors are
stored in it, and building or rebuilding it off the request path while the previous one serves.

One partial index per model, `USING hnsw (<expression> <ops>) WHERE embedding_model = '<model>'`,
named `vector_index_name(model)`. Its expression is `embedding::vector(D)` (`vector_cosine_ops`)
or `embedding::halfvec(D)` (`halfvec_cosine_ops`: half the bytes, VECTOR_INDEX_STORAGE; always
past 2,000 dimensions, pgvector's limit for `vector`). With VECTOR_BINARY_RERANK a second index on
`binary_quantize(embedding::vector(D))::bit(D)` (`bit_hamming_ops`, D bits a vector) serves a
first pass whose candidates are re-ranked by exact cosine distance (lib/retrieval/search.py).

Parameters by the model's chunks (`size_class`; beyond 2M they are not measured here, see
docs/scaling.md):

    | chunks of the model | m  | ef_construction | ef_search |
    |---------------------|----|-----------------|-----------|
    | up to 2M            | 16 | 64              | 200       |
    | up to 20M           | 24 | 128             | 300       |
    | more                | 32 | 200             | 400       |

`ef_search` is read per query from the index's own row count (`pg_class.reltuples`), unless
HNSW_EF_SEARCH or the request names one. A rebuild is due when the index's storage or `m` and
`ef_construction` are not what its size class and the settings want now. `maintain_vector_indexes`
does it in steps that each survive a timeout: drop an invalid leftover of an interrupted build,
`CREATE INDEX CONCURRENTLY` the new one under `<name>_n` (writes and searches go on, the old index
serving), then in one short transaction drop the old one and rename the new one. The reindex cron
runs it for models of at most VECTOR_INDEX_CRON_MAX_CHUNKS chunks, within its time budget; a larger
one is an operator's command (`python -m lib.cli vector-index`), since its build outlasts a
serverless invocation.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lib.config import Settings
from lib.logs import log

if TYPE_CHECKING:
    from psycopg import AsyncConnection

MAX_VECTOR_INDEX_DIMS = 2000
MAX_HALFVEC_INDEX_DIMS = 4000
_INDEX_LOCK = 7_347_120_021
_BUILD_LOCK = 7_347_120_022
# suffixes of the binary index and of an index being built, kept short: names stop at 63 bytes
BINARY_SUFFIX, BUILDING_SUFFIX = "_b", "_n"
DEFAULT_M, DEFAULT_EF_CONSTRUCTION = 16, 64  # pgvector's, for an index built without options


@dataclass(frozen=True)
class SizeClass:
    """HNSW parameters for a model with at most `up_to` chunks."""

    up_to: float
    m: int
    ef_construction: int
    ef_search: int


SIZE_CLASSES = (
    SizeClass(2_000_000, 16, 64, 200),
    SizeClass(20_000_000, 24, 128, 300),
    SizeClass(math.inf, 32, 200, 400),
)


def size_class(chunks: float) -> SizeClass:
    return next(c for c in SIZE_CLASSES if chunks <= c.up_to)


def vector_index_name(model: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:36]
    return f"chunks_hnsw_{slug}_{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def binary_index_name(model: str) -> str:
    return vector_index_name(model) + BINARY_SUFFIX


def indexed_vector_type(dimensions: int, storage: str = "vector") -> str:
    """The type a model's vectors are cast to in a new HNSW index: `storage` (`vector` or
    `halfvec`) up to 2,000 dimensions, `halfvec` up to 4,000."""
    return storage if dimensions <= MAX_VECTOR_INDEX_DIMS else "halfvec"


@dataclass(frozen=True)
class IndexSpec:
    """One HNSW index of one model's chunks."""

    model: str
    dimensions: int
    kind: str  # vector | halfvec | bit (binary-quantized)
    m: int = DEFAULT_M
    ef_construction: int = DEFAULT_EF_CONSTRUCTION

    @property
    def name(self) -> str:
        return binary_index_name(self.model) if self.kind == "bit" else vector_index_name(self.model)

    @property
    def expression(self) -> str:
        d = self.dimensions
        if self.kind == "bit":
            return f"(binary_quantize(embedding::vector({d}))::bit({d}))"
        return f"(embedding::{self.kind}({d}))"

    @property
    def ops(self) -> str:
        return "bit_hamming_ops" if self.kind == "bit" else f"{self.kind}_cosine_ops"

    def create_sql(self, name: str | None = None, *, concurrently: bool = False) -> str:
        literal = "'" + self.model.replace("'", "''") + "'"
        return (f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {name or self.name}"
                f" ON chunks USING hnsw ({self.expression} {self.ops})"
                f" WITH (m = {self.m}, ef_construction = {self.ef_construction})"
                f" WHERE embedding_model = {literal}")

    def build_memory_mb(self, chunks: float) -> int:
        """About what pgvector holds in memory to build this index in one go: each element's
        vector and its neighbour lists (2m on the ground layer), with a margin."""
        vector_bytes = {"vector": 4 * self.dimensions, "halfvec": 2 * self.dimensions,
                        "bit": self.dimensions // 8}[self.kind]
        per_element = vector_bytes + 2 * self.m * 16 + 120
        return math.ceil(max(chunks, 1) * per_element * 1.2 / 1048576)


def wanted_indexes(model: str, dimensions: int, chunks: float, settings: Settings) -> list[IndexSpec]:
    """The indexes a model of `chunks` chunks should have under the current settings; none past
    pgvector's HNSW limits."""
    if dimensions > MAX_HALFVEC_INDEX_DIMS:
        return []
    size = size_class(chunks)
    specs = [IndexSpec(model, dimensions, indexed_vector_type(dimensions, settings.vector_index_storage),
                       size.m, size.ef_construction)]
    if settings.vector_binary_rerank:
        specs.append(IndexSpec(model, dimensions, "bit", size.m, size.ef_construction))
    return specs


# --- what exists ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExistingIndex:
    """An index as the catalog has it."""

    name: str
    kind: str
    m: int
    ef_construction: int
    valid: bool
    rows: float  # reltuples: the model's chunks as of the last build, VACUUM or ANALYZE

    def matches(self, spec: IndexSpec) -> bool:
        return (self.valid and self.kind == spec.kind and self.m == spec.m
                and self.ef_construction == spec.ef_construction)


# Catalog tables only, read in the query's snapshot: pg_get_indexdef() looks the index up afresh,
# and failed ("cache lookup failed") for one a rebuild's swap dropped meanwhile. The operator
# class says the type: vector_cosine_ops, halfvec_cosine_ops, bit_hamming_ops.
INDEXES_SQL = """
SELECT c.relname, o.opcname, c.reloptions, i.indisvalid, greatest(c.reltuples, 0)
FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_opclass o ON o.oid = i.indclass[0]
WHERE c.relname = ANY(%s) AND c.relnamespace = 'public'::regnamespace
"""


def _existing(row: tuple[Any, ...]) -> ExistingIndex:
    name, opclass, options, valid, rows = row
    kind = next((k for k in ("halfvec", "bit", "vector") if opclass.startswith(k)), "vector")
    values = dict(option.split("=", 1) for option in options or ())
    return ExistingIndex(name, kind, int(values.get("m", DEFAULT_M)),
                         int(values.get("ef_construction", DEFAULT_EF_CONSTRUCTION)), bool(valid), float(rows))


async def existing_indexes(conn: AsyncConnection, model: str) -> dict[str, ExistingIndex]:
    """The model's indexes (the vector index, the binary one, and any being built), by name."""
    base = vector_index_name(model)
    names = [base, base + BINARY_SUFFIX, base + BUILDING_SUFFIX, base + BINARY_SUFFIX + BUILDING_SUFFIX]
    cur = await conn.execute(INDEXES_SQL, (names,))
    return {row[0]: _existing(row) for row in await cur.fetchall()}


@dataclass(frozen=True)
class SearchIndex:
    """What a query needs to know to use a model's indexes: the cast its expression uses, whether
    a binary index serves a first pass, and how many chunks the index holds (for `ef_search`)."""

    kind: str
    binary: bool
    rows: float


async def search_index(conn: AsyncConnection, model: str, dimensions: int) -> SearchIndex:
    """One catalog read: the model's serving indexes. Without one (not built yet), the type a new
    index would have, so a query still plans (on a sequential scan)."""
    base = vector_index_name(model)
    cur = await conn.execute(INDEXES_SQL, ([base, base + BINARY_SUFFIX],))
    found = {row[0]: _existing(row) for row in await cur.fetchall()}
    main, binary = found.get(base), found.get(base + BINARY_SUFFIX)
    kind = main.kind if main is not None and main.valid else indexed_vector_type(dimensions)
    return SearchIndex(kind, binary is not None and binary.valid, main.rows if main is not None else 0.0)


# --- creating and rebuilding ---------------------------------------------------------------------


async def ensure_vector_index(conn: AsyncConnection, model: str, dimensions: int,
                              settings: Settings | None = None) -> bool:
    """Create the model's HNSW index if it is missing. Returns True when it was created now.

    For a model met for the first time, whose chunks are about to be written: plain CREATE
    INDEX on next to no rows, in its own transaction, under an advisory lock so two instances
    meeting a new model at once do not race on the catalog. Later changes are rebuilds
    (`maintain_vector_indexes`), never done on a request's path.
    """
    from lib.config import get_settings

    settings = settings or get_settings()
    specs = wanted_indexes(model, dimensions, 0, settings)
    if not specs:
        return False
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (specs[0].name,))
    if (await cur.fetchone())[0]:
        return False
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INDEX_LOCK,))
        for spec in specs:
            await conn.execute(spec.create_sql())
    log("info", "vector_index_created", model=model, dimensions=dimensions, kind=specs[0].kind)
    return True


@dataclass
class IndexChange:
    """What maintenance did (or found due) for one index."""

    model: str
    index: str
    action: str  # built | rebuilt | dropped | dropped_leftover | due | timed_out | failed
    kind: str | None = None
    m: int | None = None
    ef_construction: int | None = None
    chunks: int = 0
    memory_mb: int | None = None
    seconds: float | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


MODELS_SQL = """
SELECT d.embedding_model, sum(d.chunk_count)::bigint,
       (SELECT vector_dims(c.embedding) FROM chunks c
        WHERE c.embedding_model = d.embedding_model AND c.embedding IS NOT NULL LIMIT 1)
FROM documents d GROUP BY d.embedding_model ORDER BY d.embedding_model
"""


async def maintain_vector_indexes(
    settings: Settings, *, time_budget_s: float | None = None, max_chunks: int | None = None,
    models: list[str] | None = None, force: bool = False,
) -> list[IndexChange]:
    """Bring every model's indexes to what `wanted_indexes` says, or the `models` named.

    Builds run on a connection of their own (`SET maintenance_work_mem` is a session setting, and
    CREATE INDEX CONCURRENTLY cannot run inside a transaction): DATABASE_URL_UNPOOLED when set,
    since behind a transaction pooler the session setting and lock may not hold. A build is started only for a model of at most
    `max_chunks` chunks (None: any), and is cancelled when `time_budget_s` runs out; its invalid
    leftover is dropped then, or by the next run. `force` rebuilds even an index that matches.
    """
    from lib import db

    started = time.monotonic()

    def left() -> float | None:
        return None if time_budget_s is None else time_budget_s - (time.monotonic() - started)

    changes: list[IndexChange] = []
    async with await db.open_connection(settings.database_url_unpooled or db.database_url(settings)) as conn:
        # one maintainer at a time: a second would find the first's build in progress and swap it in
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_BUILD_LOCK,))
        if not (await cur.fetchone())[0]:
            return []
        cur = await conn.execute(MODELS_SQL)
        for model, chunks, dimensions in await cur.fetchall():
            if dimensions is None or (models and model not in models):
                continue
            changes += await _maintain_model(conn, settings, model, dimensions, int(chunks), left, max_chunks,
                                             force)
    for change in changes:
        log("info", "vector_index_" + change.action, **change.to_json())
    return changes


async def _maintain_model(conn: AsyncConnection, settings: Settings, model: str, dimensions: int, chunks: int,
                          left: Any, max_chunks: int | None, force: bool) -> list[IndexChange]:
    changes: list[IndexChange] = []
    existing = await existing_indexes(conn, model)
    wanted = wanted_indexes(model, dimensions, chunks, settings)
    # an interrupted CREATE INDEX CONCURRENTLY leaves an invalid index behind: drop it; a valid one
    # is a finished build whose swap did not happen, kept for the step below when it is wanted
    for name, index in existing.items():
        if name.endswith(BUILDING_SUFFIX):
            target = next((spec for spec in wanted if spec.name + BUILDING_SUFFIX == name), None)
            if not index.valid or target is None or force or not _matches(index, target):
                await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
                changes.append(IndexChange(model, name, "dropped_leftover", index.kind, chunks=chunks))
    existing = await existing_indexes(conn, model)
    wanted_names = {spec.name for spec in wanted}
    for name, index in existing.items():  # a binary index nothing reads any more
        if not name.endswith(BUILDING_SUFFIX) and name not in wanted_names:
            await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            changes.append(IndexChange(model, name, "dropped", index.kind, chunks=chunks))
    for spec in wanted:
        current, built = existing.get(spec.name), existing.get(spec.name + BUILDING_SUFFIX)
        if current is not None and current.matches(spec) and not force:
            continue
        change = IndexChange(model, spec.name, "rebuilt" if current is not None else "built", spec.kind, spec.m,
                             spec.ef_construction, chunks)
        if built is None:  # no finished build waiting for its swap
            if max_chunks is not None and chunks > max_chunks:
                change.action = "due"
                change.note = (f"{chunks} chunks is more than the cron builds (VECTOR_INDEX_CRON_MAX_CHUNKS="
                               f"{max_chunks}); run `python -m lib.cli vector-index --model '{model}'`")
                changes.append(change)
                continue
            remaining = left()
            if remaining is not None and remaining < 1:
                change.action, change.note = "due", "no time left in this run"
                changes.append(change)
                continue
            change.memory_mb = min(settings.vector_index_build_memory_mb, max(64, spec.build_memory_mb(chunks)))
            began = time.monotonic()
            outcome = await _build(conn, spec, change.memory_mb, remaining)
            change.seconds = round(time.monotonic() - began, 1)
            if outcome is not None:
                change.action, change.note = outcome
                changes.append(change)
                continue
        await _swap(conn, spec.name)
        changes.append(change)
    return changes


def _matches(index: ExistingIndex, spec: IndexSpec) -> bool:
    return index.kind == spec.kind and index.m == spec.m and index.ef_construction == spec.ef_construction


async def _build(conn: AsyncConnection, spec: IndexSpec, memory_mb: int,
                 remaining: float | None) -> tuple[str, str] | None:
    """CREATE INDEX CONCURRENTLY `<name>_n`; None when it finished, else (action, note)."""
    import psycopg

    building = spec.name + BUILDING_SUFFIX
    await conn.execute(f"SET maintenance_work_mem = '{int(memory_mb)}MB'")
    await conn.execute(f"SET statement_timeout = {0 if remaining is None else max(1000, int(remaining * 1000))}")
    try:
        await conn.execute(spec.create_sql(building, concurrently=True))
    except psycopg.errors.QueryCanceled:
        await conn.execute("SET statement_timeout = 0")
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building}")
        return "timed_out", "the build did not finish in this run's time; the previous index still serves"
    except psycopg.Error as exc:
        await conn.execute("SET statement_timeout = 0")
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building}")
        return "failed", f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    finally:
        await conn.execute("RESET maintenance_work_mem")
    await conn.execute("SET statement_timeout = 0")
    return None


async def _swap(conn: AsyncConnection, name: str) -> None:
    """Drop the old index and give the new one its name, at once for every reader. The lock this
    needs on `chunks` is held for milliseconds; one waiting longer than the lock timeout gives up
    and the next run swaps."""
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        await conn.execute(f"DROP INDEX IF EXISTS {name}")
        await conn.execute(f"ALTER INDEX {name}{BUILDING_SUFFIX} RENAME TO {name}")
