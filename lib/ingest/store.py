"""Storing documents: extract, chunk, embed, then write the document and its chunks in one
transaction; delete and list.

    result = await ingest_document(data, "guide.pdf", IngestOptions(namespace="docs"), settings=settings)
    result.status   # "indexed" | "unchanged" | "replaced"

Order matters for "nothing half-written": nothing is written before the first slice of chunks is
embedded (cache first), and everything is written in one transaction, so a provider failing
midway leaves the previous version serving. Inside the transaction the previous chunks are
deleted and the new ones loaded with binary COPY; readers see the old version or the new one,
never a mix. A document of EMBED_SLICE chunks or more is embedded slice by slice into that COPY
(Postgres indexes the first slices while the next are embedded) and its keyword index is written
for the whole document by lib/ingest/keywords.py, the chunks tokenized meanwhile on another
connection; a smaller one is indexed by the triggers on `chunks`. Either way the BM25 statistics
are exact at commit. Identical bytes, model and chunking for the same
(namespace, source) return `unchanged` without extracting anything. A changed document re-embeds
only the chunks whose text changed: the others are embedding-cache hits.

Each embedding model gets a partial HNSW index on first use (`ensure_vector_index`, in
lib/ingest/vector_index.py with its storage, its parameters by size and its rebuilds):
`(embedding::vector(D)) vector_cosine_ops WHERE embedding_model = '<model>'`, or `halfvec(D)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from lib import errors
from lib.config import Settings
from lib.ingest.keywords import (
    ChunkTerms,
    KeywordChange,
    add_postings,
    analyze_chunks,
    hand_over_to_ingest,
    remove_postings,
    settle_statistics,
)
from lib.ingest.vector_index import ensure_vector_index
from lib.logs import log

if TYPE_CHECKING:
    import numpy as np
    from psycopg import AsyncConnection

    from lib.ingest.chunking import Chunk
    from lib.ingest.embedding import EmbedResult


# progress(stage, fields): stages extract, chunk, embed (per batch), write, done
OnProgress = Callable[[str, dict[str, Any]], Awaitable[None]]

# Chunks embedded per step: a document of more is written slice by slice while the next is embedded
EMBED_SLICE = 500


@dataclass(frozen=True)
class IngestOptions:
    """Where one document goes and how it is indexed; None means the deployment's default."""

    namespace: str
    source: str | None = None  # its identity in the namespace (re-ingesting it replaces it); the filename
    title: str | None = None  # from the file: PDF/DOCX properties, first heading, <title>
    metadata: dict[str, Any] = field(default_factory=dict)
    media_type: str | None = None  # as declared; generic or missing types defer to the filename
    embedding_model: str | None = None  # EMBEDDING_MODEL, see lib.ingest.embedders.default_model
    dimensions: int | None = None
    chunk_size_tokens: int | None = None  # CHUNK_SIZE_TOKENS
    chunk_overlap_tokens: int | None = None  # CHUNK_OVERLAP_TOKENS
    blob_key: str | None = None  # the original in S3, which the reindex cron watches
    source_etag: str | None = None


@dataclass
class IngestResult:
    document_id: str
    namespace: str
    source: str
    status: str  # indexed | unchanged | replaced
    chunks: int
    tokens: int
    embedding_model: str
    dimensions: int
    version: int
    title: str | None = None
    media_type: str | None = None
    embedded: int = 0  # chunks sent to the embedding model now
    cached: int = 0  # chunks whose embedding came from the cache
    embedding_tokens: int = 0
    cost_usd: float | None = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EmbedTotals:
    """What embedding a document's slices did, added up for its IngestResult."""

    dimensions: int = 0
    embedded: int = 0
    cached: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0  # None once any slice's price is unknown

    def add(self, result: EmbedResult) -> None:
        self.dimensions = result.dimensions
        self.embedded += result.embedded
        self.cached += result.cached
        self.tokens += result.tokens
        self.cost_usd = None if self.cost_usd is None or result.cost_usd is None else self.cost_usd + result.cost_usd


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the vector index per model: lib/ingest/vector_index.py -----------------------------------


async def namespace_model(conn: AsyncConnection, namespace: str) -> str | None:
    """The embedding model most of the namespace's documents use; None for a new namespace."""
    cur = await conn.execute(
        "SELECT embedding_model FROM documents WHERE namespace = %s"
        " GROUP BY embedding_model ORDER BY count(*) DESC, embedding_model LIMIT 1", (namespace,))
    row = await cur.fetchone()
    return row[0] if row else None


# --- binary COPY of chunks -----------------------------------------------------------------------


_CHUNK_COLUMNS = ("document_id", "namespace", "position", "text", "content_hash", "token_count",
                  "heading_path", "page", "char_start", "char_end", "metadata", "embedding_model",
                  "embedding")
_CHUNK_TYPES = ["uuid", "text", "int4", "text", "text", "int4", "text[]", "int4", "int4", "int4", "jsonb", "text",
                "vector"]


async def copy_chunks(conn: AsyncConnection, rows: Iterable[tuple[Any, ...]] | AsyncIterable[tuple[Any, ...]],
                      ids: list[int] | None = None) -> None:
    """Load chunk rows (in `_CHUNK_COLUMNS` order, embedding as a float32 numpy row, a list or a
    `pgvector.Vector`: pgvector-python's COPY dumper takes each) with binary COPY, with
    the ids given (from `allocate_chunk_ids`) or the sequence's. Rows may arrive as they are
    made: the server inserts (and indexes) the first ones while the next are being computed."""
    from psycopg.types.json import Jsonb

    columns, types = (("id", *_CHUNK_COLUMNS), ["int8", *_CHUNK_TYPES]) if ids else (_CHUNK_COLUMNS, _CHUNK_TYPES)
    async with conn.cursor() as cursor:
        statement = f"COPY chunks ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        async with cursor.copy(statement) as copy:
            copy.set_types(types)
            i = 0
            async for row in _slices(rows, flat=True):
                row = row[:10] + (Jsonb(row[10]),) + row[11:]
                await copy.write_row((ids[i], *row) if ids else row)
                i += 1


async def _slices(items: Iterable[Any] | AsyncIterable[Any], flat: bool = False) -> AsyncIterator[Any]:
    """Iterate a list or an async iterator alike; a plain list of vectors is one slice."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    elif flat:
        for item in items:
            yield item
    else:
        yield items


async def allocate_chunk_ids(conn: AsyncConnection, count: int) -> list[int]:
    """`count` ids from the chunks' sequence, so postings can name chunks before they are copied."""
    cur = await conn.execute("SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)",
                             (count,))
    return [row[0] for row in await cur.fetchall()]


# --- ingest --------------------------------------------------------------------------------------


async def ingest_document(
    data: bytes, filename: str, options: IngestOptions, *, settings: Settings, request_id: str | None = None,
    caller: str | None = None, on_progress: OnProgress | None = None,
) -> IngestResult:
    """Index one file as `options` say. The size limit and the media type are checked here, first
    (413, 415), for every caller; `request_id` and `caller` go to the usage ledger."""
    from lib import db
    from lib.ingest.chunking import chunk_document
    from lib.ingest.documents import detect_media_type, extract_document
    from lib.ingest.embedders import check_allowed, default_model, resolve_embedding_model
    from lib.ingest.embedding import embed_texts

    async def progress(stage: str, **fields: Any) -> None:
        if on_progress is not None:
            await on_progress(stage, fields)

    if len(data) > settings.max_document_bytes:
        raise errors.PayloadTooLarge(
            f"{filename}: {len(data)} bytes is over the limit of {settings.max_document_bytes} bytes "
            "(MAX_DOCUMENT_BYTES)", details={"limit_bytes": settings.max_document_bytes})
    namespace, source, title = options.namespace, options.source or filename, options.title
    metadata = dict(options.metadata or {})
    kind = detect_media_type(filename, options.media_type)
    if options.embedding_model:  # named by the request: only a model this deployment allows
        spec = check_allowed(resolve_embedding_model(options.embedding_model, options.dimensions), settings,
                             "embedding_model")
    size = settings.chunk_size_tokens if options.chunk_size_tokens is None else options.chunk_size_tokens
    overlap = settings.chunk_overlap_tokens if options.chunk_overlap_tokens is None else options.chunk_overlap_tokens
    if size < 1:
        raise errors.field_error("chunk_size_tokens", "must be at least 1")
    if overlap < 0:
        raise errors.field_error("chunk_overlap_tokens", "must be at least 0")
    overlap = min(overlap, size - 1)
    chunking = {"size_tokens": size, "overlap_tokens": overlap}
    digest = sha256_hex(data)

    async with db.connect(settings) as conn:
        if not options.embedding_model:  # a namespace keeps the model it was created with
            model = await namespace_model(conn, namespace) or default_model(settings)
            spec = resolve_embedding_model(model, options.dimensions)
        previous = await _find(conn, namespace, source)
    if previous and _same(previous, digest, spec.name, chunking, metadata, title):
        await progress("done", status="unchanged")
        return _result(previous, "unchanged", spec.dimensions or 0)

    await progress("extract", filename=filename, bytes=len(data))
    document = extract_document(data, filename, kind)
    await progress("chunk", sections=len(document.sections))
    chunks = chunk_document(document, size, overlap)
    if not chunks:
        raise errors.ValidationFailed(f"{filename}: the document has no text", code="empty_document")

    texts = [c.text for c in chunks]
    slices = [(start, min(len(texts), start + EMBED_SLICE)) for start in range(0, len(texts), EMBED_SLICE)]
    embedded = EmbedTotals()

    async def embed_slice(number: int) -> list[np.ndarray]:
        start, end = slices[number]
        result = await embed_texts(texts[start:end], spec.name, settings=settings, request_id=request_id,
                                   caller=caller)
        embedded.add(result)
        await progress("embed", batches_done=number + 1, batches=len(slices), chunks_done=end, chunks=len(chunks))
        return result.vectors

    async def analyze() -> list[ChunkTerms]:
        async with db.connect(settings) as other:
            return await analyze_chunks(other, namespace, texts)

    await progress("embed", batches_done=0, batches=len(slices), chunks_done=0, chunks=len(chunks))
    # A large document: Postgres tokenizes its chunks for the keyword index on another connection
    # while they are embedded, and its later slices are embedded while the earlier ones are
    # written. A small one is indexed by the triggers on `chunks`, in one statement, on commit's path.
    analysis = asyncio.create_task(analyze()) if len(chunks) >= EMBED_SLICE else None
    try:
        first = await embed_slice(0)  # before anything is written: a provider refusing at once writes nothing

        async def vectors() -> AsyncIterator[list[np.ndarray]]:
            yield first
            for number in range(1, len(slices)):
                yield await embed_slice(number)
            await progress("write", chunks=len(chunks))

        dims = embedded.dimensions
        doc_title = title or document.title
        tokens = sum(c.token_count for c in chunks)
        fields = {
            "namespace": namespace, "source": source, "title": doc_title, "media_type": document.media_type,
            "content_hash": digest, "source_etag": options.source_etag, "blob_key": options.blob_key,
            "metadata": json.dumps(metadata), "embedding_model": spec.name, "chunk_count": len(chunks),
            "token_count": tokens, "chunking": json.dumps(chunking),
        }
        async with db.connect(settings) as conn:
            await ensure_vector_index(conn, spec.name, dims, settings)
            document_id, version, status = await store_document(conn, fields, chunks, vectors(), analysis)
            if status == "unchanged":  # a concurrent upload of the same bytes got there first
                row = await _find(conn, namespace, source)
                await progress("done", status="unchanged")
                return _result(row, "unchanged", dims)
    finally:
        if analysis is not None and not analysis.done():
            analysis.cancel()
    result = IngestResult(
        str(document_id), namespace, source, status, len(chunks), tokens, spec.name, dims, version,
        doc_title, document.media_type, embedded.embedded, embedded.cached, embedded.tokens,
        embedded.cost_usd)
    log("info", "document_indexed", namespace=namespace, source=source, status=status,
        chunks=len(chunks), embedded=embedded.embedded, cached=embedded.cached, request_id=request_id)
    await progress("done", **result.as_dict())
    return result


async def store_document(
    conn: AsyncConnection, fields: dict[str, Any], chunks: list[Chunk],
    vectors: Sequence[Sequence[float]] | AsyncIterable[Sequence[Sequence[float]]],
    analyzed: Sequence[ChunkTerms] | Awaitable[Sequence[ChunkTerms]] | None = None,
) -> tuple[Any, int, str]:
    """The write transaction: upsert the document row, swap its chunks (binary COPY) and their
    keyword index (lib/ingest/keywords.py), statistics last.

    `fields` are the documents columns (metadata and chunking as JSON text). `vectors` are the
    chunks' embeddings in order, or their slices as they are embedded: the COPY takes each slice
    as it comes, and anything raised meanwhile rolls the whole write back. `analyzed` are the
    chunks' terms from `analyze_chunks` (or a task computing them): this transaction then writes
    the keyword index itself, for the whole document; without them the triggers on `chunks` do,
    statement by statement (cheaper for a small document: no second connection, fewer round
    trips). Returns (document id, version, status); `unchanged` when an identical version was
    already there.
    """
    from lib.ingest.embedding import content_hash

    namespace = fields["namespace"]
    metadata = json.loads(fields["metadata"])
    change = KeywordChange()
    async with conn.transaction():
        if analyzed is not None:
            await hand_over_to_ingest(conn)
        document_id, version, status = await _upsert_document(conn, fields)
        if status == "unchanged":
            return document_id, version, status
        if status == "replaced":
            if analyzed is not None:
                await remove_postings(conn, document_id, change)
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (document_id,))
        ids = await allocate_chunk_ids(conn, len(chunks)) if analyzed is not None else None

        async def rows() -> AsyncIterator[tuple[Any, ...]]:
            position = 0
            async for batch in _slices(vectors):
                for c, vector in zip(chunks[position:position + len(batch)], batch, strict=True):
                    yield (document_id, namespace, c.position, c.text, content_hash(c.text), c.token_count,
                           list(c.heading_path), c.page, c.char_start, c.char_end, metadata,
                           fields["embedding_model"], vector)
                position += len(batch)
            if position != len(chunks):
                raise ValueError(f"{position} vectors for {len(chunks)} chunks")

        await copy_chunks(conn, rows(), ids)
        if analyzed is not None:
            if inspect.isawaitable(analyzed):
                analyzed = await analyzed
            await add_postings(conn, namespace, ids, analyzed, change)
            await settle_statistics(conn, namespace, change)
    return document_id, version, status


_SELECT = ("SELECT id, namespace, source, title, media_type, content_hash, embedding_model, chunk_count,"
           " token_count, version, metadata, chunking, blob_key, source_etag, created_at, updated_at"
           " FROM documents")


async def _find(conn: AsyncConnection, namespace: str, source: str, lock: bool = False) -> dict | None:
    from psycopg.rows import dict_row

    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_SELECT + " WHERE namespace = %s AND source = %s" + (" FOR UPDATE" if lock else ""),
                      (namespace, source))
    return await cur.fetchone()


def _same(row: dict, digest: str, model: str, chunking: dict, metadata: dict, title: str | None) -> bool:
    return (row["content_hash"] == digest and row["embedding_model"] == model
            and row["chunking"] == chunking and row["metadata"] == metadata
            and (title is None or row["title"] == title))


def _result(row: dict, status: str, dimensions: int) -> IngestResult:
    return IngestResult(str(row["id"]), row["namespace"], row["source"], status, row["chunk_count"],
                        row["token_count"], row["embedding_model"], dimensions, row["version"], row["title"],
                        row["media_type"], 0, 0, 0, 0.0)


async def _upsert_document(conn: AsyncConnection, fields: dict[str, Any]) -> tuple[Any, int, str]:
    """Insert the document row, or lock and update the existing one. (id, version, status)."""
    cur = await conn.execute(
        "INSERT INTO documents (namespace, source, title, media_type, content_hash, source_etag, blob_key,"
        " metadata, embedding_model, chunk_count, token_count, chunking)"
        " VALUES (%(namespace)s, %(source)s, %(title)s, %(media_type)s, %(content_hash)s, %(source_etag)s,"
        " %(blob_key)s, %(metadata)s, %(embedding_model)s, %(chunk_count)s, %(token_count)s, %(chunking)s)"
        " ON CONFLICT (namespace, source) DO NOTHING RETURNING id, version", fields)
    inserted = await cur.fetchone()
    if inserted:
        return inserted[0], inserted[1], "indexed"
    existing = await _find(conn, fields["namespace"], fields["source"], lock=True)
    assert existing is not None
    if _same(existing, fields["content_hash"], fields["embedding_model"], json.loads(fields["chunking"]),
             json.loads(fields["metadata"]), fields["title"]):
        return existing["id"], existing["version"], "unchanged"
    cur = await conn.execute(
        "UPDATE documents SET title = %(title)s, media_type = %(media_type)s,"
        " content_hash = %(content_hash)s, source_etag = %(source_etag)s, blob_key = %(blob_key)s,"
        " metadata = %(metadata)s, embedding_model = %(embedding_model)s, chunk_count = %(chunk_count)s,"
        " token_count = %(token_count)s, chunking = %(chunking)s, version = version + 1, updated_at = now()"
        " WHERE id = %(id)s RETURNING version", {**fields, "id": existing["id"]})
    (version,) = await cur.fetchone()
    return existing["id"], version, "replaced"


# --- delete and list -----------------------------------------------------------------------------


async def delete_document(namespace: str, *, settings: Settings, document_id: str | None = None,
                          source: str | None = None) -> dict[str, Any]:
    """Delete one document (by id or source) and its chunks; 404 when it is not there."""
    from lib import db

    if not document_id and not source:
        raise errors.field_error("document_id", "give the document's id or its source")
    async with db.connect(settings) as conn, conn.transaction():
        if document_id:
            document_id = _canonical_uuid(document_id)
            cur = await conn.execute(
                "DELETE FROM documents WHERE namespace = %s AND id = %s RETURNING id, source, chunk_count",
                (namespace, document_id))
        else:
            cur = await conn.execute(
                "DELETE FROM documents WHERE namespace = %s AND source = %s RETURNING id, source, chunk_count",
                (namespace, source))
        row = await cur.fetchone()
    if row is None:
        what = f"id {document_id}" if document_id else f"source {source!r}"
        raise errors.NotFound(f"no document with {what} in namespace {namespace!r}", code="document_not_found")
    return {"document_id": str(row[0]), "namespace": namespace, "source": row[1], "deleted": True,
            "chunks": row[2]}


def _canonical_uuid(value: str) -> str:
    # uuid.UUID also reads `urn:uuid:...`, which Postgres refuses: send the canonical spelling
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise errors.field_error("document_id", f"{value!r} is not a document id (a UUID)") from None


async def list_documents(namespace: str, *, settings: Settings, limit: int = 100, offset: int = 0) -> list[dict]:
    """The namespace's documents, most recently updated first."""
    from psycopg.rows import dict_row

    from lib import db

    async with db.connect(settings) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_SELECT + " WHERE namespace = %s ORDER BY updated_at DESC, id LIMIT %s OFFSET %s",
                          (namespace, limit, offset))
        rows = await cur.fetchall()
    return [_public(row) for row in rows]


def _public(row: dict) -> dict[str, Any]:
    return {
        "document_id": str(row["id"]), "namespace": row["namespace"], "source": row["source"],
        "title": row["title"], "media_type": row["media_type"], "chunks": row["chunk_count"],
        "tokens": row["token_count"], "embedding_model": row["embedding_model"], "version": row["version"],
        "metadata": row["metadata"], "content_hash": row["content_hash"], "blob_key": row["blob_key"],
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
    }


# --- progress as a stream ------------------------------------------------------------------------


async def ingest_events(run: Callable[[OnProgress], Awaitable[IngestResult]]) -> AsyncIterator[dict[str, Any]]:
    """Start an ingest and, once it reports its first stage, return its progress as events for a
    streamed (SSE) upload: `{"type": "progress", "stage": ...}` per stage and embedding batch, then
    one `{"type": "result", ...}` or `{"type": "error", "error": {"code", "message"}}`.

    A failure before the first stage (a document over the size limit, a type we cannot read, an
    unknown model, no database) is raised here instead, while the caller can still answer it
    with its own status, as a plain JSON error."""
    import asyncio

    queue: asyncio.Queue[dict[str, Any] | Exception] = asyncio.Queue()

    async def on_progress(stage: str, fields: dict[str, Any]) -> None:
        if stage != "done":
            await queue.put({"type": "progress", "stage": stage, **fields})

    async def work() -> None:
        try:
            result = await run(on_progress)
            await queue.put({"type": "result", **result.as_dict()})
        except Exception as exc:  # noqa: BLE001 - handed to the reader, who raises or reports it
            await queue.put(exc)

    task = asyncio.create_task(work())
    try:
        first = await queue.get()
    except BaseException:  # the request itself was cancelled: stop the ingest with it
        task.cancel()
        raise
    if isinstance(first, Exception):
        raise first
    return _stream_events(first, queue, task)


async def _stream_events(first: dict[str, Any], queue: asyncio.Queue[dict[str, Any] | Exception],
                         task: asyncio.Task[None]) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, Any] | Exception = first
    try:
        while isinstance(event, dict):
            yield event
            if event["type"] == "result":
                return
            event = await queue.get()
        yield _error_event(event)
    finally:
        if not task.done():
            task.cancel()


def _error_event(exc: Exception) -> dict[str, Any]:
    """An ingest that failed after its stream started: the error as the stream's last event."""
    if isinstance(exc, errors.ApiError):
        return {"type": "error", "status": exc.status, "error": {"code": exc.code, "message": exc.message}}
    log("error", "ingest_failed", exception=type(exc).__name__, detail=repr(exc)[:2000])
    return {"type": "error", "status": 500,
            "error": {"code": "internal_error", "message": "internal error; see the server log"}}
