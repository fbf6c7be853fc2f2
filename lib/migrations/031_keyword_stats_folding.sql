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

CREATE OR REPLACE FUNCTION compact_keyword_stats() RETURNS integer LANGUAGE sql AS $$
    SELECT coalesce(sum(compact_keyword_stats_for(namespace)), 0)::integer
    FROM (SELECT DISTINCT namespace FROM keyword_stats) namespaces;
$$;

CREATE FUNCTION fold_long_keyword_stats(ns text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM keyword_stats WHERE namespace = ns LIMIT 65) recent) > 64 THEN
        PERFORM compact_keyword_stats_for(ns);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION chunk_terms_add() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION chunk_terms_remove() RETURNS trigger LANGUAGE plpgsql AS $$
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
