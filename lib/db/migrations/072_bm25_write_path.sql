-- BM25 writes: postings inserted in the impact index's order, the term dictionary read through
-- its index, and impacts refreshed in small batches that never hold writers or readers back.
--
-- Inserting postings. At a million chunks the impact index (term_id, impact DESC, chunk_id) is
-- far larger than shared_buffers, and inserting a write's postings in chunk order put each one on
-- a random leaf page: most of a 10,000-chunk write's time went to reading, dirtying and logging
-- (a full-page image per page after each checkpoint) those leaves, several times each. Postings
-- are now inserted sorted by that index's key, so a leaf page is visited once per write. A
-- chunk's postings are then no longer side by side in the heap (only a document's are), so the
-- chunk index becomes (chunk_id, term_id): rescoring a chunk, or scoring the chunks in a
-- filter's scope, fetches only the postings of the query's terms.
--
-- The term dictionary is read with `lexeme = ANY(array)`, an index scan whatever the number of
-- lexemes; joined to a CTE (estimated at 200 rows), a large write read the namespace's whole
-- dictionary (a sequential scan) instead.
--
-- Refreshing impacts. 071_bm25_postings.sql recomputed a namespace's impacts in one transaction
-- under the exclusive advisory lock on its basis: at a million chunks that is minutes, and every
-- upload to the namespace waited for the lock (failing at DATABASE_LOCK_TIMEOUT_MS), as did any
-- write touching a posting the UPDATE had locked. Now the reindex cron (`lib/reindex.refresh_impacts`) runs:
--
-- 1. `bm25_refresh_begin`: takes the exclusive lock only if it is free at once (a try-lock never
--    queues, so new writers never wait behind it), and switches the basis to the new avgdl, k1
--    and b, keeping the old one as `prior_*`. Writers that start afterwards compute with the new
--    basis; none was in flight (the try-lock proved it), so every older posting is committed.
-- 2. `bm25_refresh_batch`, one short transaction per range of chunk ids: rewrites the impacts of
--    those chunks' postings. Row locks are held for one batch only. `refreshed_through` records
--    the progress, so a cron run stopped midway is resumed by the next.
-- 3. `bm25_refresh_finish`: every posting is on the new basis; `prior_*` is cleared.
--
-- Meanwhile a namespace's postings hold impacts of either basis. The bound of keyword search
-- stays valid (lib/retrieval/search.py): with equal k1 and b it scales impacts by the current
-- avgdl over the smaller of the two avgdl values; when k1 or b changed it proves nothing and the
-- ranking is read to BM25_MAX_DEPTH, as for any basis other than the query's.

ALTER TABLE bm25_basis
    ADD COLUMN prior_avgdl float8,   -- set while a refresh is rewriting: the basis some postings still use
    ADD COLUMN prior_k1    float8,
    ADD COLUMN prior_b     float8,
    ADD COLUMN refreshed_through bigint;  -- chunk ids rewritten so far (a stopped refresh resumes)

DROP FUNCTION refresh_bm25_impacts(text, float8, float8, float8);

-- Start (or continue) a refresh of the namespace's impacts when its avgdl moved more than
-- `drift` (a fraction) from the basis, or k1 or b changed. True: batches to run. False: nothing
-- to do, or writers are in flight (the cron tries again on its next run).
CREATE FUNCTION bm25_refresh_begin(ns text, new_k1 float8, new_b float8, drift float8) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    basis bm25_basis;
    now_n bigint;
    now_avgdl float8;
BEGIN
    SELECT * INTO basis FROM bm25_basis WHERE namespace = ns;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF basis.prior_avgdl IS NOT NULL THEN
        RETURN true;  -- an earlier refresh stopped midway: finish it
    END IF;
    SELECT greatest(sum(chunks), 0), greatest(sum(terms), 1)::float8 / greatest(sum(chunks), 1)
    INTO now_n, now_avgdl FROM keyword_stats WHERE namespace = ns;
    IF abs(now_avgdl / basis.avgdl - 1) <= drift AND basis.k1 = new_k1 AND basis.b = new_b THEN
        RETURN false;
    END IF;
    IF NOT pg_try_advisory_xact_lock(730070, hashtext(ns)) THEN
        RETURN false;
    END IF;
    -- no writer in flight and none can start before this commits: read the statistics again
    SELECT greatest(sum(chunks), 0), greatest(sum(terms), 1)::float8 / greatest(sum(chunks), 1)
    INTO now_n, now_avgdl FROM keyword_stats WHERE namespace = ns;
    UPDATE bm25_basis SET prior_avgdl = avgdl, prior_k1 = k1, prior_b = b,
                          avgdl = now_avgdl, k1 = new_k1, b = new_b, chunks = now_n, computed_at = now(),
                          refreshed_through = 0
    WHERE namespace = ns;
    RETURN true;
END $$;

-- Rewrite the impacts of the postings of the namespace's chunks with ids in (after, after + span].
-- Returns the postings rewritten, or NULL past the last chunk (the refresh is done).
CREATE FUNCTION bm25_refresh_batch(ns text, after bigint, span integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    basis bm25_basis;
    rewritten bigint;
BEGIN
    IF after >= (SELECT coalesce(max(id), 0) FROM chunks) THEN
        RETURN NULL;
    END IF;
    SELECT * INTO basis FROM bm25_basis WHERE namespace = ns;
    UPDATE postings p SET impact = bm25_impact(p.tf, p.length, basis.avgdl, basis.k1, basis.b)
    FROM chunks c
    WHERE c.id > after AND c.id <= after + span AND c.namespace = ns AND p.chunk_id = c.id
      AND p.impact <> bm25_impact(p.tf, p.length, basis.avgdl, basis.k1, basis.b);
    GET DIAGNOSTICS rewritten = ROW_COUNT;
    UPDATE bm25_basis SET refreshed_through = greatest(refreshed_through, after + span) WHERE namespace = ns;
    RETURN rewritten;
END $$;

CREATE FUNCTION bm25_refresh_finish(ns text) RETURNS void LANGUAGE sql AS $$
    UPDATE bm25_basis SET prior_avgdl = NULL, prior_k1 = NULL, prior_b = NULL, refreshed_through = NULL
    WHERE namespace = ns;
$$;

-- --- writing postings in index order ------------------------------------------------------------

-- built before the old one is dropped: readers are held back (by DROP INDEX) only until commit
CREATE INDEX postings_chunk_term_idx ON postings (chunk_id, term_id);
DROP INDEX postings_chunk_idx;

CREATE OR REPLACE FUNCTION bm25_index_rows(ids bigint[], namespaces text[], texts text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ns text;
BEGIN
    FOR ns IN SELECT DISTINCT n FROM unnest(namespaces) AS n ORDER BY 1 LOOP
        WITH tokens AS MATERIALIZED (
            SELECT r.id AS chunk_id, t.lexeme, coalesce(array_length(t.positions, 1), 1) AS tf
            FROM unnest(ids, namespaces, texts) AS r(id, namespace, text),
                 unnest(to_tsvector('english', r.text)) AS t
            WHERE r.namespace = ns
        ),
        lengths AS MATERIALIZED (
            SELECT chunk_id, sum(tf)::integer AS length FROM tokens GROUP BY chunk_id
        ),
        lexemes AS MATERIALIZED (
            SELECT lexeme, count(*)::integer AS df FROM tokens GROUP BY lexeme
        ),
        known AS MATERIALIZED (
            SELECT d.id, d.lexeme FROM terms d
            WHERE d.namespace = ns AND d.lexeme = ANY(ARRAY(SELECT lexeme FROM lexemes))
        ),
        added AS (
            INSERT INTO terms (namespace, lexeme)
            SELECT ns, l.lexeme FROM lexemes l WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.lexeme = l.lexeme)
            ORDER BY l.lexeme
            ON CONFLICT (namespace, lexeme) DO UPDATE SET lexeme = excluded.lexeme
            RETURNING id, lexeme
        ),
        ids AS MATERIALIZED (
            SELECT id, lexeme FROM known UNION ALL SELECT id, lexeme FROM added
        ),
        basis AS MATERIALIZED (
            SELECT * FROM bm25_basis_for(ns, (SELECT avg(length) FROM lengths))
        ),
        posted AS (
            INSERT INTO postings (term_id, tf, impact, chunk_id, length)
            SELECT i.id, k.tf, bm25_impact(k.tf, l.length, b.avgdl, b.k1, b.b), k.chunk_id, l.length
            FROM tokens k JOIN lengths l USING (chunk_id) JOIN ids i USING (lexeme) CROSS JOIN basis b
            ORDER BY 1, 3 DESC, 4  -- the impact index's order: each leaf page visited once
        ),
        counted AS (
            INSERT INTO term_stats_delta (namespace, term_id, df)
            SELECT ns, i.id, l.df FROM lexemes l JOIN ids i USING (lexeme)
        )
        INSERT INTO keyword_stats (namespace, chunks, terms)
        SELECT ns, count(*), sum(length) FROM lengths HAVING count(*) > 0;
        PERFORM fold_long_keyword_stats(ns);
    END LOOP;
END $$;
