"""Re-ingest a document whose original in S3 changed, and remove one whose original is gone.

The S3 ETag decides cheaply (a HEAD request); only a changed object is downloaded and sent through
`ingest_document`, which is itself a no-op when the bytes hash the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lib.config import Settings

if TYPE_CHECKING:
    from psycopg import AsyncConnection


async def refresh_document(conn: AsyncConnection, document_id: str | None, settings: Settings) -> str:
    from lib.ingest.blobs import blob_etag, fetch_blob, filename_from_key
    from lib.ingest.store import IngestOptions, ingest_document

    cur = await conn.execute(
        "SELECT namespace, source, blob_key, source_etag, media_type, metadata, title"
        " FROM documents WHERE id = %s", (document_id,))
    row = await cur.fetchone()
    if row is None:
        return "gone"
    namespace, source, key, known_etag, media_type, metadata, title = row
    if not key:
        return "no_source"
    etag = await blob_etag(settings, key)
    if etag is None:
        async with conn.transaction():
            await conn.execute("DELETE FROM documents WHERE id = %s AND blob_key = %s", (document_id, key))
        return "orphan_removed"
    if etag == known_etag:
        return "unchanged"
    blob = await fetch_blob(settings, namespace, key)
    options = IngestOptions(namespace=namespace, source=source, title=title, metadata=metadata,
                            media_type=media_type, blob_key=key, source_etag=blob.etag)
    result = await ingest_document(blob.data, filename_from_key(key), options, settings=settings)
    if result.status == "unchanged":  # same bytes under a new ETag: remember the ETag
        await conn.execute("UPDATE documents SET source_etag = %s WHERE id = %s", (blob.etag, document_id))
        return "unchanged"
    return "reingested"
