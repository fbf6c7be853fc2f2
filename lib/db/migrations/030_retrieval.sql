-- Retrieval: keyword statistics for BM25, conversations, and the reindex job queue.
--
-- BM25 needs, per query term, the chunks containing it with the term frequency and the chunk
-- length (`chunk_terms`, one row per chunk and distinct lexeme), the number of chunks containing
-- the term (counted from `chunk_terms` at query time, so it is exact by construction), and per
-- namespace the number of chunks and the total length (`keyword_stats`).
--
-- Triggers on `chunks` keep both up to date, so ingestion writes chunks and nothing else.
-- `keyword_stats` is append-only: every statement that adds or removes chunks appends one delta
-- row per namespace, and readers sum them. Concurrent ingests therefore never wait on a shared
-- counter row, and a rolled-back ingest leaves no trace. `compact_keyword_stats()` folds the deltas
-- into one row per namespace (the reindex cron calls it); it is safe to run at any time.
--
-- Terms are the lexemes of `to_tsvector('english', text)` (stemmed, stop words removed); the chunk
-- length is the number of lexeme occurrences. A chunk with no lexemes is not counted.

CREATE TABLE chunk_terms (
    namespace  text    NOT NULL,
    term       text    NOT NULL,
    chunk_id   bigint  NOT NULL,
    tf         integer NOT NULL,   -- occurrences of `term` in the chunk
    length     integer NOT NULL,   -- occurrences of every term in the chunk (BM25 |D|)
    PRIMARY KEY (namespace, term, chunk_id) INCLUDE (tf, length)
);
CREATE INDEX chunk_terms_chunk_idx ON chunk_terms (chunk_id);

CREATE TABLE keyword_stats (
    id         bigserial PRIMARY KEY,
    namespace  text   NOT NULL,
    chunks     bigint NOT NULL,    -- delta of the number of chunks with at least one term
    terms      bigint NOT NULL     -- delta of the summed chunk lengths
);
CREATE INDEX keyword_stats_namespace_idx ON keyword_stats (namespace) INCLUDE (chunks, terms);

-- Keep `keyword_stats` short without the cron: once a namespace has more than 64 delta rows, the
-- statement that adds one folds them into one row.
--
-- Folding deletes delta rows, so two transactions folding the same namespace could wait on each
-- other. A transaction-level advisory lock per namespace, taken with try (never waited for), lets
-- exactly one of them fold at a time; the others skip it, as readers sum whatever rows there are.
CREATE FUNCTION compact_keyword_stats_for(ns text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    removed integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(730031, hashtext(ns)) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM keyword_stats WHERE namespace = ns RETURNING chunks, terms
    ),
    total AS (
        SELECT count(*) AS n, coalesce(sum(chunks), 0) AS chunks, coalesce(sum(terms), 0) AS terms FROM gone
    ),
    folded AS (
        INSERT INTO keyword_stats (namespace, chunks, terms)
        SELECT ns, chunks, terms FROM total WHERE chunks <> 0 OR terms <> 0
        RETURNING 1
    )
    SELECT (SELECT n FROM total) - (SELECT count(*) FROM folded) INTO removed;
    RETURN removed;
END $$;

CREATE FUNCTION fold_long_keyword_stats(ns text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM keyword_stats WHERE namespace = ns LIMIT 65) recent) > 64 THEN
        PERFORM compact_keyword_stats_for(ns);
    END IF;
END $$;

CREATE FUNCTION chunk_terms_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH terms AS MATERIALIZED (
        SELECT n.id AS chunk_id, n.namespace, t.lexeme AS term,
               coalesce(array_length(t.positions, 1), 1) AS tf
        FROM added n, unnest(to_tsvector('english', n.text)) AS t
    ),
    lengths AS (
        SELECT chunk_id, namespace, sum(tf)::integer AS length FROM terms GROUP BY chunk_id, namespace
    ),
    postings AS (
        INSERT INTO chunk_terms (namespace, term, chunk_id, tf, length)
        SELECT t.namespace, t.term, t.chunk_id, t.tf, l.length
        FROM terms t JOIN lengths l USING (chunk_id)
    )
    INSERT INTO keyword_stats (namespace, chunks, terms)
    SELECT namespace, count(*), sum(length) FROM lengths GROUP BY namespace;
    PERFORM fold_long_keyword_stats(ns) FROM (SELECT DISTINCT namespace AS ns FROM added) touched;
    RETURN NULL;
END $$;

CREATE FUNCTION chunk_terms_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (
        DELETE FROM chunk_terms p USING removed o
        WHERE p.chunk_id = o.id
        RETURNING p.namespace, p.chunk_id, p.length
    ),
    per_chunk AS (
        SELECT DISTINCT namespace, chunk_id, length FROM gone
    )
    INSERT INTO keyword_stats (namespace, chunks, terms)
    SELECT namespace, -count(*), -sum(length) FROM per_chunk GROUP BY namespace;
    PERFORM fold_long_keyword_stats(ns) FROM (SELECT DISTINCT namespace AS ns FROM removed) touched;
    RETURN NULL;
END $$;

-- An update only matters to BM25 when the text or the namespace changed (a re-embedding does not).
CREATE FUNCTION chunk_terms_replace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT o.id FROM old_rows o JOIN new_rows n USING (id)
        WHERE o.text IS DISTINCT FROM n.text OR o.namespace IS DISTINCT FROM n.namespace
    ),
    gone AS (
        DELETE FROM chunk_terms p USING changed c
        WHERE p.chunk_id = c.id
        RETURNING p.namespace, p.chunk_id, p.length
    ),
    per_chunk AS (
        SELECT DISTINCT namespace, chunk_id, length FROM gone
    )
    INSERT INTO keyword_stats (namespace, chunks, terms)
    SELECT namespace, -count(*), -sum(length) FROM per_chunk GROUP BY namespace;

    WITH terms AS MATERIALIZED (
        SELECT n.id AS chunk_id, n.namespace, t.lexeme AS term,
               coalesce(array_length(t.positions, 1), 1) AS tf
        FROM new_rows n
        JOIN old_rows o USING (id)
        CROSS JOIN LATERAL unnest(to_tsvector('english', n.text)) AS t
        WHERE o.text IS DISTINCT FROM n.text OR o.namespace IS DISTINCT FROM n.namespace
    ),
    lengths AS (
        SELECT chunk_id, namespace, sum(tf)::integer AS length FROM terms GROUP BY chunk_id, namespace
    ),
    postings AS (
        INSERT INTO chunk_terms (namespace, term, chunk_id, tf, length)
        SELECT t.namespace, t.term, t.chunk_id, t.tf, l.length
        FROM terms t JOIN lengths l USING (chunk_id)
    )
    INSERT INTO keyword_stats (namespace, chunks, terms)
    SELECT namespace, count(*), sum(length) FROM lengths GROUP BY namespace;
    RETURN NULL;
END $$;

CREATE TRIGGER chunks_keywords_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_add();
CREATE TRIGGER chunks_keywords_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_remove();
CREATE TRIGGER chunks_keywords_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_replace();

-- Fold the deltas into one row per namespace. Rows appended by transactions still in flight are
-- invisible here and stay as they are, so nothing is lost or counted twice.
CREATE FUNCTION compact_keyword_stats() RETURNS integer LANGUAGE sql AS $$
    SELECT coalesce(sum(compact_keyword_stats_for(namespace)), 0)::integer
    FROM (SELECT DISTINCT namespace FROM keyword_stats) namespaces;
$$;

-- Conversations: the turns of a chat, so follow-up questions work across stateless invocations.
-- The id is text: a useChat chat id (chosen by the browser) names a conversation as well as ours.
CREATE TABLE conversations (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    namespace   text NOT NULL,
    caller      text NOT NULL DEFAULT 'anonymous',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversation_turns (
    id               bigserial PRIMARY KEY,
    conversation_id  text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    content          text NOT NULL,
    citations        jsonb NOT NULL DEFAULT '[]'::jsonb,
    token_count      integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_turns_idx ON conversation_turns (conversation_id, id);

-- The reindex queue. Invocations claim jobs with FOR UPDATE SKIP LOCKED and a lease, so several
-- can share the work; a job whose lease ran out (a crashed invocation) is claimed again.
CREATE TABLE reindex_jobs (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('refresh_source', 'reembed', 'switch_model')),
    namespace     text NOT NULL,
    document_id   uuid REFERENCES documents (id) ON DELETE CASCADE,
    target_model  text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    claimed_by    text,
    outcome       text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
-- At most one open job per piece of work: planning twice enqueues nothing new.
CREATE UNIQUE INDEX reindex_jobs_open_idx
    ON reindex_jobs (kind, namespace, coalesce(document_id, '00000000-0000-0000-0000-000000000000'::uuid), target_model)
    WHERE status IN ('pending', 'running');
CREATE INDEX reindex_jobs_queue_idx ON reindex_jobs (id) WHERE status IN ('pending', 'running');

-- New-model vectors computed by the reindex cron. They go live for a whole namespace at once,
-- when every document has them, so the old vectors keep serving until then.
CREATE TABLE pending_embeddings (
    chunk_id      bigint PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    namespace     text NOT NULL,
    model         text NOT NULL,
    embedding     vector NOT NULL
);
CREATE INDEX pending_embeddings_model_idx ON pending_embeddings (namespace, model);
