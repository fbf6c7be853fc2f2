"""The reindex cron against moto's S3 server: a changed object is re-ingested, an unchanged one is
left alone, a deleted one is removed with its chunks."""

from __future__ import annotations

import pytest

from lib import db
from lib.config import get_settings
from tests.conftest import run_async as run
from tests.conftest import use_s3_bucket

BUCKET = "reindex-sources"


@pytest.fixture
def s3(s3_server: str, env):
    return use_s3_bucket(env, s3_server, BUCKET)


def test_changed_sources_are_reingested_and_missing_ones_removed(database: str, s3) -> None:
    from lib.ingest.blobs import fetch_blob
    from lib.ingest.store import IngestOptions, ingest_document
    from lib.reindex import run_reindex

    settings = get_settings()
    keys = {name: f"uploads/docs/{name}.txt" for name in ("stays", "changes", "vanishes")}
    for name, key in keys.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"The {name} document says hello.".encode())

    async def ingest_all():
        for key in keys.values():
            blob = await fetch_blob(settings, "docs", key)
            options = IngestOptions(namespace="docs", source=key, blob_key=key, source_etag=blob.etag)
            await ingest_document(blob.data, key.rsplit("/", 1)[-1], options, settings=settings)

    run(ingest_all)
    s3.put_object(Bucket=BUCKET, Key=keys["changes"], Body=b"The changes document now says goodbye.")
    s3.delete_object(Bucket=BUCKET, Key=keys["vanishes"])

    report = run(lambda: run_reindex(settings, worker="cron")).to_json()
    outcomes = {job["document_id"]: job["outcome"] for job in report["jobs"]}
    assert sorted(outcomes.values()) == ["orphan_removed", "reingested", "unchanged"]
    assert report["orphans_removed"] == 1 and report["remaining"] == 0

    async def state():
        async with db.connect() as conn:
            cur = await conn.execute("SELECT source, version FROM documents WHERE namespace = 'docs' ORDER BY source")
            documents = await cur.fetchall()
            cur = await conn.execute("SELECT text FROM chunks WHERE namespace = 'docs' ORDER BY text")
            texts = [row[0] for row in await cur.fetchall()]
        return documents, texts

    documents, texts = run(state)
    assert documents == [(keys["changes"], 2), (keys["stays"], 1)]
    assert texts == ["The changes document now says goodbye.", "The stays document says hello."]
