-- The embedding cache is shared by every tenant (one text is embedded once), but what a response
-- reports as "cached" must not tell one tenant what another embedded. This records which texts
-- each caller has had embedded, so each sees the cache as if it were its own.
CREATE TABLE embedding_cache_seen (
    caller        text NOT NULL,
    model         text NOT NULL,
    dimensions    integer NOT NULL,
    content_hash  text NOT NULL,
    PRIMARY KEY (caller, model, dimensions, content_hash)
);
