-- Ingestion: documents, their chunks with embeddings, and the embedding cache.
--
-- `chunks.embedding` is an untyped `vector` so models of different dimensions live side by side;
-- each model gets its own partial HNSW index, created when the model is first used, e.g.
--   CREATE INDEX ... ON chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops)
--   WHERE embedding_model = 'local/hash-384';
-- so a model change is a reindex, not a migration.

CREATE TABLE documents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    namespace      text NOT NULL,
    source         text NOT NULL,              -- filename, URL or S3 key: unique per namespace
    title          text,
    media_type     text NOT NULL,
    content_hash   text NOT NULL,              -- sha256 of the original bytes
    source_etag    text,                       -- S3 ETag when the original lives in S3
    blob_key       text,                       -- S3 key when the original lives in S3
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding_model text NOT NULL,
    chunk_count    integer NOT NULL DEFAULT 0,
    token_count    integer NOT NULL DEFAULT 0,
    version        integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace, source)
);
CREATE INDEX documents_namespace_idx ON documents (namespace, updated_at DESC);

CREATE TABLE chunks (
    id             bigserial PRIMARY KEY,
    document_id    uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    namespace      text NOT NULL,
    position       integer NOT NULL,           -- order within the document, from 0
    text           text NOT NULL,
    content_hash   text NOT NULL,              -- sha256 of `text`: the embedding cache key
    token_count    integer NOT NULL,
    heading_path   text[] NOT NULL DEFAULT '{}',
    page           integer,                    -- 1-based page for paged formats (PDF)
    char_start     integer NOT NULL,           -- offsets into the extracted document text
    char_end       integer NOT NULL,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,  -- the document's metadata, for filters
    embedding_model text NOT NULL,
    embedding      vector,
    UNIQUE (document_id, position)
);
CREATE INDEX chunks_namespace_idx ON chunks (namespace);
CREATE INDEX chunks_metadata_idx ON chunks USING gin (metadata jsonb_path_ops);

CREATE TABLE embedding_cache (
    model          text NOT NULL,
    dimensions     integer NOT NULL,
    content_hash   text NOT NULL,
    embedding      vector NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, dimensions, content_hash)
);
