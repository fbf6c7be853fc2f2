"""The reindex cron: its secret, a model migration without downtime, and concurrent invocations
sharing the queue without doing anything twice."""

from __future__ import annotations

import asyncio

from lib import db
from lib.config import get_settings
from lib.reindex import claim, finish, plan, run_job, run_reindex
from lib.retrieval.search import SearchOptions, search
from tests.conftest import run_async as run


def ingest(namespace: str, texts: dict[str, str]) -> None:
    from lib.ingest.store import IngestOptions, ingest_document

    async def main():
        for name, text in texts.items():
            await ingest_document(text.encode(), name, IngestOptions(namespace=namespace), settings=get_settings())

    run(main)


async def fetch(sql: str, *params):
    async with db.connect() as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()


# --- auth -------------------------------------------------------------------------------------


def test_cron_secret_is_required_when_configured(client, env) -> None:
    env(CRON_SECRET="cron-s3cret-value")
    assert client.get("/api/reindex").status_code == 401
    assert client.get("/api/reindex", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/reindex", headers={"authorization": "Basic cron-s3cret-value"}).status_code == 401
    ok = client.get("/api/reindex", headers={"authorization": "Bearer cron-s3cret-value"})
    assert ok.status_code == 200, ok.text
    assert {"processed", "remaining", "planned"} <= set(ok.json())


def test_api_keys_do_not_replace_the_cron_secret(client, env) -> None:
    env(CRON_SECRET="cron-s3cret-value", API_KEYS="app-key")
    assert client.get("/api/reindex", headers={"authorization": "Bearer app-key"}).status_code == 401


def test_production_without_a_secret_refuses_to_run(client, env) -> None:
    env(VERCEL_ENV="production", CRON_SECRET=None, API_KEYS="app-key")
    response = client.get("/api/reindex", headers={"authorization": "Bearer app-key"})
    assert response.status_code == 503
    assert "CRON_SECRET" in response.json()["error"]["message"]


def test_local_development_runs_without_a_secret(client) -> None:
    response = client.get("/api/reindex")
    assert response.status_code == 200
    assert response.json()["remaining"] == 0


# --- model migration --------------------------------------------------------------------------


def test_model_migration_keeps_old_vectors_serving_until_the_switch(database: str, env) -> None:
    env(EMBEDDING_MODEL="local/hash-16")
    ingest("migrate", {"a.txt": "Kettles boil water quickly.", "b.txt": "Toasters brown bread evenly.",
                       "c.txt": "Blenders crush ice."})
    env(EMBEDDING_MODEL="local/hash-32")
    settings = get_settings()
    options = SearchOptions(namespace="migrate", mode="vector", top_k=3)

    async def halfway():
        async with db.connect() as conn:
            planned = await plan(conn, settings)
            [job] = await claim(conn, "w1", 1)
            await finish(conn, job, "w1", await run_job(conn, job, settings))
            hits = await search(conn, "boil water", options, settings)
        models = await fetch("SELECT DISTINCT embedding_model FROM chunks WHERE namespace = 'migrate'")
        pending = await fetch("SELECT count(*) FROM pending_embeddings")
        return planned, job, hits, models, pending

    planned, job, hits, models, pending = run(halfway)
    assert planned == 4 and job.kind == "reembed"  # three documents, then the switch
    assert models == [("local/hash-16",)]  # nothing switched yet
    assert pending == [(1,)]
    assert len(hits) == 3  # the old vectors still answer

    report = run(lambda: run_reindex(settings, batch=2, worker="w2")).to_json()
    assert report["remaining"] == 0
    assert report["outcomes"] == {"reembedded": 2, "switched": 1}

    async def after():
        async with db.connect() as conn:
            hits = await search(conn, "boil water", options, settings)
        models = await fetch("SELECT DISTINCT embedding_model FROM chunks WHERE namespace = 'migrate'"
                             " UNION SELECT DISTINCT embedding_model FROM documents WHERE namespace = 'migrate'")
        dims = await fetch("SELECT DISTINCT vector_dims(embedding) FROM chunks WHERE namespace = 'migrate'")
        pending = await fetch("SELECT count(*) FROM pending_embeddings")
        return hits, models, dims, pending

    hits, models, dims, pending = run(after)
    assert models == [("local/hash-32",)] and dims == [(32,)] and pending == [(0,)]
    assert hits[0].source == "a.txt"
    # a second run finds nothing left to do
    again = run(lambda: run_reindex(settings)).to_json()
    assert again["processed"] == 0 and again["planned"] == 0


# --- concurrency ------------------------------------------------------------------------------


def test_two_invocations_share_the_work_without_doing_any_twice(database: str, env) -> None:
    env(EMBEDDING_MODEL="local/hash-16")
    ingest("shared", {f"doc{i}.txt": f"Document number {i} about topic {i}." for i in range(8)})
    env(EMBEDDING_MODEL="local/hash-24")
    settings = get_settings()

    async def both():
        return await asyncio.gather(run_reindex(settings, batch=1, worker="first"),
                                    run_reindex(settings, batch=1, worker="second"))

    first, second = run(both)
    # (documents of earlier tests move to the new model too; look at this namespace's jobs)
    first_ids = {job["id"] for job in first.processed if job["namespace"] == "shared"}
    second_ids = {job["id"] for job in second.processed if job["namespace"] == "shared"}
    all_first = [job["id"] for job in first.processed]
    all_second = [job["id"] for job in second.processed]
    assert not set(all_first) & set(all_second) and len(set(all_first)) == len(all_first)
    jobs = run(lambda: fetch("SELECT id, kind, status, attempts, claimed_by FROM reindex_jobs"
                             " WHERE namespace = 'shared'"))
    everything = run(lambda: fetch("SELECT status, attempts FROM reindex_jobs WHERE target_model = 'local/hash-24'"))
    assert everything and all(row == ("done", 1) for row in everything)
    assert len(jobs) == 9  # eight documents and the switch
    assert first_ids.isdisjoint(second_ids)
    assert first_ids | second_ids == {row[0] for row in jobs}
    assert first_ids and second_ids  # both took part
    assert all(status == "done" and attempts == 1 for _, _, status, attempts, _ in jobs)
    # each reports what was open when it stopped; the one that stopped last saw nothing left
    assert min(first.remaining, second.remaining) == 0
    models = run(lambda: fetch("SELECT DISTINCT embedding_model FROM chunks WHERE namespace = 'shared'"))
    assert models == [("local/hash-24",)]


def test_a_crashed_invocations_jobs_are_taken_again_after_the_lease(database: str, env) -> None:
    env(EMBEDDING_MODEL="local/hash-16")
    ingest("crash", {"x.txt": "Something to re-embed."})
    env(EMBEDDING_MODEL="local/hash-40")
    settings = get_settings()

    async def crash_then_resume():
        async with db.connect() as conn:
            await plan(conn, settings)
            claimed = await claim(conn, "crashed", 1000)
            # the invocation dies here; a later one must not take the jobs while the lease holds
            nothing = await claim(conn, "next", 10)
            await conn.execute("UPDATE reindex_jobs SET lease_until = now() - interval '1 second'"
                               " WHERE claimed_by = 'crashed'")
        report = await run_reindex(settings, worker="next")
        return claimed, nothing, report

    claimed, nothing, report = run(crash_then_resume)
    assert claimed and nothing == []
    assert report.to_json()["remaining"] == 0
    assert {job["id"] for job in report.processed} >= {job.id for job in claimed}
