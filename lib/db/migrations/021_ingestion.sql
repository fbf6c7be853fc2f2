-- Ingestion: remember how a document was chunked, so re-uploading the same bytes with the same
-- options is a no-op while new options (chunk size, overlap) re-chunk it.
ALTER TABLE documents ADD COLUMN IF NOT EXISTS chunking jsonb NOT NULL DEFAULT '{}'::jsonb;
