"""The reindex cron: keep the index in step with its sources and with the configured model.

One invocation:
1. plans, when the queue is empty (under an advisory lock, so concurrent invocations plan once):
   a `refresh_source` job per document whose original lives in S3, and for each namespace whose
   documents use another embedding model than the configured one, a `reembed` job per document
   plus one `switch_model` job;
2. claims jobs in bounded batches (`FOR UPDATE SKIP LOCKED`, with a lease, so a crashed
   invocation's jobs are taken again later) until the queue is empty or the time budget is spent;
3. drops stale pending vectors, folds the BM25 statistics (`compact_keyword_stats()`) and
   recomputes the BM25 impacts of namespaces whose average chunk length drifted
   (`refresh_impacts`, past BM25_IMPACT_DRIFT, in batches that never hold writers back);
4. with the time left, (re)builds the HNSW index of each model whose size class or storage
   changed, concurrently, the old index serving until the new one replaces it
   (`lib.ingest.vector_index.maintain_vector_indexes`), for models of at most
   VECTOR_INDEX_CRON_MAX_CHUNKS chunks; larger ones are reported `due` for the operator's
   `python -m lib.cli vector-index`.

Model migration without downtime: `reembed` writes the new vectors into `pending_embeddings`;
`switch_model` (claimable only once every `reembed` of its namespace is done) swaps them in for the
whole namespace in one transaction. Until then searches use the old vectors.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import db
from lib.config import Settings
from lib.ingest.vector_index import maintain_vector_indexes
from lib.logs import log
from lib.observe.upkeep import run_upkeep

if TYPE_CHECKING:
    from psycopg import AsyncConnection

_PLAN_LOCK_ID = 7_347_120_030
_REFRESH_LOCK_ID = 7_347_120_072  # one impact refresh at a time (session-level)
LEASE_S = 300
# Chunk ids whose postings one impact-refresh transaction rewrites (about 35 postings a chunk)
REFRESH_SPAN = 2_000
INDEX_BUILD_MIN_S = 5.0  # time left below which a run does not look at the vector indexes


@dataclass
class Job:
    id: int
    kind: str
    namespace: str
    document_id: str | None
    target_model: str
    attempts: int


@dataclass
class ReindexReport:
    processed: list[dict[str, Any]] = field(default_factory=list)
    planned: int = 0
    remaining: int = 0
    failed: int = 0
    orphans_removed: int = 0
    duration_s: float = 0.0
    observe: dict[str, Any] = field(default_factory=dict)  # pruning and alerts (lib/observe/upkeep.py)
    vector_indexes: list[dict[str, Any]] = field(default_factory=list)  # builds (lib/ingest/vector_index.py)

    def to_json(self) -> dict[str, Any]:
        by_outcome: dict[str, int] = {}
        for item in self.processed:
            by_outcome[item["outcome"]] = by_outcome.get(item["outcome"], 0) + 1
        return {"processed": len(self.processed), "remaining": self.remaining, "planned": self.planned,
                "failed": self.failed, "orphans_removed": self.orphans_removed, "outcomes": by_outcome,
                "jobs": self.processed, "duration_s": round(self.duration_s, 3), "observe": self.observe,
                "vector_indexes": self.vector_indexes}


def target_model(settings: Settings) -> str | None:
    """The model every namespace moves to: only one the operator named in EMBEDDING_MODEL. A default
    that changed by itself (a provider key added) never re-embeds anything at the owner's expense."""
    if not settings.embedding_model:
        return None
    from lib.ingest.embedders import resolve_embedding_model

    return resolve_embedding_model(settings.embedding_model).name


# --- planning ---------------------------------------------------------------------------------


async def plan(conn: AsyncConnection, settings: Settings) -> int:
    """Enqueue the work of a new cycle when the queue is empty; returns how many jobs were added."""
    model = target_model(settings)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PLAN_LOCK_ID,))
        cur = await conn.execute("SELECT count(*) FROM reindex_jobs WHERE status IN ('pending', 'running')")
        if (await cur.fetchone())[0]:
            return 0
        cur = await conn.execute(
            "INSERT INTO reindex_jobs (kind, namespace, document_id)"
            " SELECT 'refresh_source', namespace, id FROM documents WHERE blob_key IS NOT NULL"
            " ORDER BY namespace, id ON CONFLICT DO NOTHING",
        )
        added = cur.rowcount
        if model is None:
            return added
        cur = await conn.execute(
            "INSERT INTO reindex_jobs (kind, namespace, document_id, target_model)"
            " SELECT 'reembed', namespace, id, %(model)s FROM documents WHERE embedding_model <> %(model)s"
            " ORDER BY namespace, id ON CONFLICT DO NOTHING",
            {"model": model},
        )
        added += cur.rowcount
        cur = await conn.execute(
            "INSERT INTO reindex_jobs (kind, namespace, target_model)"
            " SELECT DISTINCT 'switch_model', namespace, %(model)s FROM documents"
            " WHERE embedding_model <> %(model)s ON CONFLICT DO NOTHING",
            {"model": model},
        )
        added += cur.rowcount
    return added


# --- the queue --------------------------------------------------------------------------------

CLAIM_SQL = """
WITH claimable AS (
    SELECT j.id FROM reindex_jobs j
    WHERE (j.status = 'pending' OR (j.status = 'running' AND j.lease_until < now()))
      AND NOT (j.kind = 'switch_model' AND EXISTS (
          SELECT 1 FROM reindex_jobs r
          WHERE r.kind = 'reembed' AND r.namespace = j.namespace AND r.target_model = j.target_model
            AND r.status IN ('pending', 'running')))
    ORDER BY j.id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
UPDATE reindex_jobs j
SET status = 'running', attempts = j.attempts + 1, claimed_by = %(worker)s,
    lease_until = now() + make_interval(secs => %(lease)s)
FROM claimable WHERE j.id = claimable.id
RETURNING j.id, j.kind, j.namespace, j.document_id::text, j.target_model, j.attempts
"""


async def claim(conn: AsyncConnection, worker: str, batch: int) -> list[Job]:
    async with conn.transaction():
        cur = await conn.execute(CLAIM_SQL, {"batch": batch, "worker": worker, "lease": LEASE_S})
        rows = await cur.fetchall()
    return sorted((Job(*row) for row in rows), key=lambda job: job.id)


async def finish(conn: AsyncConnection, job: Job, worker: str, outcome: str, error: str | None = None) -> None:
    """Mark a job done (or failed after three attempts, else pending again), if still ours."""
    if error is None:
        status = "done"
    else:
        status = "failed" if job.attempts >= 3 else "pending"
    await conn.execute(
        "UPDATE reindex_jobs SET status = %s, outcome = %s, last_error = %s, lease_until = NULL,"
        " finished_at = CASE WHEN %s IN ('done', 'failed') THEN now() END"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (status, outcome, error, status, job.id, worker),
    )


async def release(conn: AsyncConnection, job: Job, worker: str) -> None:
    """Give back a claimed job we will not start (the time budget ran out)."""
    await conn.execute(
        "UPDATE reindex_jobs SET status = 'pending', attempts = attempts - 1, lease_until = NULL"
        " WHERE id = %s AND claimed_by = %s AND status = 'running'",
        (job.id, worker),
    )


async def remaining(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM reindex_jobs WHERE status IN ('pending', 'running')")
    return (await cur.fetchone())[0]


# --- the jobs ---------------------------------------------------------------------------------


async def reembed_document(conn: AsyncConnection, job: Job, settings: Settings) -> str:
    """Embed a document's chunks with the target model into `pending_embeddings`."""
    from lib.db.vector import to_vector
    from lib.ingest.embedding import embed_texts

    cur = await conn.execute(
        "SELECT c.id, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
        " WHERE c.document_id = %s AND d.embedding_model <> %s ORDER BY c.position",
        (job.document_id, job.target_model),
    )
    rows = await cur.fetchall()
    if not rows:
        return "up_to_date"
    result = await embed_texts([text for _, text in rows], job.target_model, settings=settings)
    async with conn.transaction():
        for (chunk_id, _), vector in zip(rows, result.vectors, strict=True):
            await conn.execute(
                "INSERT INTO pending_embeddings (chunk_id, namespace, model, embedding)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (chunk_id) DO UPDATE"
                " SET model = excluded.model, embedding = excluded.embedding",
                (chunk_id, job.namespace, job.target_model, to_vector(vector)),
            )
    return "reembedded"


async def switch_model(conn: AsyncConnection, job: Job, settings: Settings) -> str:
    """Swap the new vectors in for the whole namespace at once, if every document has them."""
    from lib.ingest.vector_index import ensure_vector_index

    async with conn.transaction():
        # documents still missing new vectors: embed them in the next cycle, keep the old ones now
        cur = await conn.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id"
            " LEFT JOIN pending_embeddings p ON p.chunk_id = c.id AND p.model = %(model)s"
            " WHERE d.namespace = %(ns)s AND d.embedding_model <> %(model)s AND p.chunk_id IS NULL",
            {"ns": job.namespace, "model": job.target_model},
        )
        if (await cur.fetchone())[0]:
            return "incomplete"
        cur = await conn.execute(
            "SELECT vector_dims(embedding) FROM pending_embeddings WHERE namespace = %s AND model = %s LIMIT 1",
            (job.namespace, job.target_model),
        )
        row = await cur.fetchone()
        if row is not None:
            await ensure_vector_index(conn, job.target_model, row[0], settings)
        await conn.execute(
            "UPDATE chunks c SET embedding = p.embedding, embedding_model = p.model"
            " FROM pending_embeddings p WHERE p.chunk_id = c.id AND p.namespace = %s AND p.model = %s",
            (job.namespace, job.target_model),
        )
        await conn.execute(
            "UPDATE documents d SET embedding_model = %(model)s, updated_at = now()"
            " WHERE d.namespace = %(ns)s AND d.embedding_model <> %(model)s AND NOT EXISTS ("
            " SELECT 1 FROM chunks c WHERE c.document_id = d.id AND c.embedding_model <> %(model)s)",
            {"ns": job.namespace, "model": job.target_model},
        )
        await conn.execute("DELETE FROM pending_embeddings WHERE namespace = %s AND model = %s",
                           (job.namespace, job.target_model))
    return "switched"


async def refresh_source(conn: AsyncConnection, job: Job, settings: Settings) -> str:
    """Re-ingest a document whose S3 original changed; delete it when the original is gone."""
    from lib.reindex.sources import refresh_document

    return await refresh_document(conn, job.document_id, settings)


async def run_job(conn: AsyncConnection, job: Job, settings: Settings) -> str:
    if job.kind == "reembed":
        return await reembed_document(conn, job, settings)
    if job.kind == "switch_model":
        return await switch_model(conn, job, settings)
    return await refresh_source(conn, job, settings)


# --- one invocation ---------------------------------------------------------------------------


async def cleanup(conn: AsyncConnection, settings: Settings) -> int:
    """Drop vectors computed for a model that is no longer the target, and fold the statistics."""
    cur = await conn.execute(
        "DELETE FROM pending_embeddings p WHERE p.model <> %s AND NOT EXISTS ("
        " SELECT 1 FROM reindex_jobs j WHERE j.kind = 'switch_model' AND j.target_model = p.model"
        " AND j.status IN ('pending', 'running'))",
        (target_model(settings),),
    )
    removed = cur.rowcount
    await conn.execute("SELECT compact_keyword_stats()")
    await refresh_impacts(conn, settings)
    return removed


async def refresh_impacts(conn: AsyncConnection, settings: Settings) -> dict[str, int]:
    """Recompute the BM25 impacts of each namespace whose avgdl moved more than BM25_IMPACT_DRIFT
    since they were computed, or whose k1 or b are not the deployment's any more. A stale basis
    never makes keyword search wrong, only its bound looser (lib/retrieval/search.py).

    In short transactions (072_bm25_write_path.sql): the basis is switched only when no
    writer of the namespace is in flight (else the next run tries again), then the postings are
    rewritten REFRESH_SPAN chunk ids at a time, so uploads and searches never wait on a refresh
    for longer than one batch. `conn` must not be inside a transaction."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (_REFRESH_LOCK_ID,))
    if not (await cur.fetchone())[0]:
        return {}  # another invocation is refreshing
    try:
        return await _refresh_impacts(conn, settings)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (_REFRESH_LOCK_ID,))


async def _refresh_impacts(conn: AsyncConnection, settings: Settings) -> dict[str, int]:
    cur = await conn.execute("SELECT namespace FROM bm25_basis ORDER BY namespace")
    refreshed: dict[str, int] = {}
    for (namespace,) in await cur.fetchall():
        cur = await conn.execute("SELECT bm25_refresh_begin(%s, %s, %s, %s)",
                                 (namespace, settings.bm25_k1, settings.bm25_b, settings.bm25_impact_drift))
        if not (await cur.fetchone())[0]:
            continue
        cur = await conn.execute("SELECT coalesce(refreshed_through, 0) FROM bm25_basis WHERE namespace = %s",
                                 (namespace,))
        after, rewritten = (await cur.fetchone())[0], 0
        while True:
            cur = await conn.execute("SELECT bm25_refresh_batch(%s, %s, %s)", (namespace, after, REFRESH_SPAN))
            batch = (await cur.fetchone())[0]
            if batch is None:
                break
            rewritten += batch
            after += REFRESH_SPAN
        await conn.execute("SELECT bm25_refresh_finish(%s)", (namespace,))
        refreshed[namespace] = max(rewritten, 1)
    if refreshed:
        log("info", "bm25_impacts_refreshed", namespaces=refreshed)
    return refreshed


async def run_reindex(settings: Settings, *, batch: int | None = None, time_budget_s: float | None = None,
                      worker: str | None = None) -> ReindexReport:
    """Plan if needed, work through the queue within the time budget, report what is left."""
    started = time.monotonic()
    budget = settings.reindex_time_budget_s if time_budget_s is None else time_budget_s
    batch = max(1, batch or settings.reindex_batch)
    worker = worker or uuid.uuid4().hex[:12]
    report = ReindexReport()
    async with db.connect(settings) as conn:
        report.planned = await plan(conn, settings)
        out_of_time = False
        while not out_of_time and time.monotonic() - started < budget:
            jobs = await claim(conn, worker, batch)
            if not jobs:
                break
            for job in jobs:
                if time.monotonic() - started >= budget:
                    await release(conn, job, worker)
                    out_of_time = True
                    continue
                try:
                    outcome = await run_job(conn, job, settings)
                    await finish(conn, job, worker, outcome)
                except Exception as exc:  # noqa: BLE001 - one bad document must not stop the cron
                    log("warning", "reindex_job_failed", job=job.id, kind=job.kind, error=repr(exc)[:500])
                    outcome = "failed"
                    report.failed += 1
                    await finish(conn, job, worker, outcome, repr(exc)[:500])
                if outcome == "orphan_removed":
                    report.orphans_removed += 1
                report.processed.append({"id": job.id, "kind": job.kind, "document_id": job.document_id,
                                         "namespace": job.namespace, "outcome": outcome})
        report.orphans_removed += await cleanup(conn, settings)
        report.remaining = await remaining(conn)
    report.observe = await run_upkeep(settings)
    left = budget - (time.monotonic() - started)
    if left >= INDEX_BUILD_MIN_S:
        changes = await maintain_vector_indexes(settings, time_budget_s=left,
                                                max_chunks=settings.vector_index_cron_max_chunks)
        report.vector_indexes = [change.to_json() for change in changes]
    report.duration_s = time.monotonic() - started
    log("info", "reindex_run", worker=worker, processed=len(report.processed), remaining=report.remaining,
        planned=report.planned, failed=report.failed)
    return report
