-- Observability: one row per request, rollups of those rows, and the alerts the cron sent.
--
-- `request_log` holds what the HTTP edge knows of a request (function, status, latency, caller).
-- What the request spent on providers stays in `usage_ledger`, joined on `request_id`: nothing is
-- copied from it. Raw rows are pruned after METRICS_RETENTION_DAYS by the cron.
--
-- `metrics_rollup` is what every metric query reads. `observe_record()` inserts a request's row
-- and, in the same statement, folds it (with its ledger rows) into one rollup row per grain
-- ('hour', 'day', and 'total' since the beginning for the Prometheus counters) and per group the
-- request belongs to: its function, user, namespace and caller, and each model and provider it
-- called. Folding is an upsert that adds, so concurrent instances never lose a count: two
-- statements adding to the same row serialise on its row lock, and rows are always taken in key
-- order, so they cannot deadlock. A query for 30 days reads at most 31 rows per group.
--
-- Latencies are counted in FIXED buckets, so percentiles come from bucket counts: the bounds are
-- 10^(k/10) ms rounded to three digits, from 0.1 ms to 1000 s (`observe_latency_bounds()`; the
-- same list is `LATENCY_BOUNDS_MS` in lib/observe/buckets.py). Token counts use the OpenTelemetry
-- GenAI advice (1, 4, 16, ... 4^13 tokens).

CREATE TABLE request_log (
    created_at  timestamptz NOT NULL DEFAULT now(),   -- when the request finished
    request_id  text NOT NULL,
    function    text NOT NULL,
    method      text NOT NULL,
    status      smallint NOT NULL,  -- the HTTP status; 499/502 for a stream the client or provider broke
    error_code  text,
    latency_ms  double precision NOT NULL,            -- until the last byte was sent
    ttfb_ms     double precision,                     -- streams only: until the first body byte
    caller      text,                                 -- a non-secret name of the API key
    user_id     text,                                 -- the end user the request was for
    namespace   text
);
CREATE INDEX request_log_created_at ON request_log (created_at);
CREATE INDEX request_log_request ON request_log (request_id);
-- the dashboard's "slowest" and "failed" lists, without a scan of the window
CREATE INDEX request_log_slowest ON request_log (latency_ms DESC);
CREATE INDEX request_log_failed ON request_log (created_at) WHERE status >= 400;

CREATE TABLE metrics_rollup (
    grain          text NOT NULL CHECK (grain IN ('hour', 'day', 'total')),
    dim            text NOT NULL CHECK (dim IN ('function', 'user', 'namespace', 'caller', 'model', 'provider')),
    bucket_start   timestamptz NOT NULL,   -- UTC hour or day; 1970-01-01 for 'total'
    key            text NOT NULL,          -- '' for requests without a user, namespace, ...
    kind           text NOT NULL,          -- model and provider rows: 'chat' or 'embedding'; else ''
    provider       text NOT NULL,          -- model rows: the model's provider
    requests       bigint NOT NULL,
    client_errors  bigint NOT NULL,        -- status 4xx
    server_errors  bigint NOT NULL,        -- status 5xx
    error_codes    jsonb NOT NULL,         -- {"upstream_error": 3, ...}
    latency_ms_sum double precision NOT NULL,
    latency_counts bigint[] NOT NULL,      -- counts per latency bucket (sparse, see observe_histogram)
    streams        bigint NOT NULL,
    ttfb_ms_sum    double precision NOT NULL,
    ttfb_counts    bigint[],
    llm_requests   bigint NOT NULL,        -- requests that ran a chat model (or got its cached answer)
    cache_hits     bigint NOT NULL,        -- ... answered from the response cache
    operations     bigint NOT NULL,        -- provider calls (ledger rows other than cache hits)
    failed_operations bigint NOT NULL,
    retries        bigint NOT NULL,        -- provider calls that were a retry (attempt > 1)
    fallbacks      bigint NOT NULL,        -- chat models tried after the first one
    input_tokens   bigint NOT NULL,
    output_tokens  bigint NOT NULL,
    cost_usd       numeric(20, 8) NOT NULL,
    -- model and provider rows: each provider call's own duration and token counts
    operation_ms_sum     double precision,
    operation_counts     bigint[],
    input_token_counts   bigint[],
    output_token_counts  bigint[],
    PRIMARY KEY (grain, dim, bucket_start, key, kind)
) PARTITION BY LIST (grain);
-- One table per grain: a 30-day read scans the compact daily rows, not pages shared with the far
-- more numerous hourly ones, and pruning hours touches only the hourly table. Free space on each
-- page lets most updates stay on their page (HOT), without touching the index.
CREATE TABLE metrics_rollup_hour PARTITION OF metrics_rollup FOR VALUES IN ('hour') WITH (fillfactor = 70);
CREATE TABLE metrics_rollup_day PARTITION OF metrics_rollup FOR VALUES IN ('day') WITH (fillfactor = 70);
CREATE TABLE metrics_rollup_total PARTITION OF metrics_rollup FOR VALUES IN ('total') WITH (fillfactor = 70);

-- Alerts the cron decided to send. The key is unique per kind, threshold and period, and is
-- inserted with ON CONFLICT DO NOTHING before anything is sent, so concurrent cron runs agree on
-- one row; delivery then claims undelivered rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE alerts (
    alert_key     text PRIMARY KEY,        -- e.g. budget:day:80:2026-05-01
    kind          text NOT NULL,
    threshold     double precision NOT NULL,
    period_start  timestamptz NOT NULL,
    message       text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    suppressed    boolean NOT NULL DEFAULT false,  -- a higher threshold of the same period went instead
    delivered_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX alerts_undelivered ON alerts (created_at) WHERE delivered_at IS NULL AND NOT suppressed;

-- --- bucket arithmetic -----------------------------------------------------------------------

CREATE FUNCTION observe_latency_bounds() RETURNS float8[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{0.1,0.126,0.158,0.2,0.251,0.316,0.398,0.501,0.631,0.794,1,1.26,1.58,2,2.51,3.16,3.98,5.01,6.31,7.94,10,12.6,15.8,20,25.1,31.6,39.8,50.1,63.1,79.4,100,126,158,200,251,316,398,501,631,794,1000,1260,1580,2000,2510,3160,3980,5010,6310,7940,10000,12600,15800,20000,25100,31600,39800,50100,63100,79400,100000,126000,158000,200000,251000,316000,398000,501000,631000,794000,1000000}'::float8[]
$$;

-- Token bounds as width_bucket thresholds: 0.5 above each OpenTelemetry bound, so that an integer
-- count equal to a bound falls in that bound's bucket (Prometheus buckets are `le`, inclusive).
CREATE FUNCTION observe_token_bounds() RETURNS float8[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '{1.5,4.5,16.5,64.5,256.5,1024.5,4096.5,16384.5,65536.5,262144.5,1048576.5,4194304.5,16777216.5,67108864.5}'::float8[]
$$;

-- Histograms are sparse: a bigint[] whose subscripts are bucket numbers as `width_bucket` gives
-- them (0: under the first bound, i: in [bounds[i], bounds[i+1]), n: at or over the last bound),
-- holding only the span from the lowest to the highest bucket counted, with NULL for an empty
-- bucket inside it. One request's latency is a one-element array, `[37:37]={1}`, so a row per user
-- and hour stays small and adding a request to a rollup touches one element.
CREATE FUNCTION observe_histogram(vals float8[], bounds float8[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    counts bigint[];
    v float8;
    b integer;
BEGIN
    IF vals IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH v IN ARRAY vals LOOP
        CONTINUE WHEN v IS NULL;
        b := width_bucket(v, bounds);
        IF counts IS NULL THEN
            counts := array_fill(1::bigint, ARRAY[1], ARRAY[b]);
        ELSE
            counts[b] := coalesce(counts[b], 0) + 1;
        END IF;
    END LOOP;
    RETURN counts;
END
$$;

CREATE FUNCTION observe_add(a bigint[], b bigint[]) RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF a IS NULL THEN
        RETURN b;
    END IF;
    IF b IS NULL THEN
        RETURN a;
    END IF;
    FOR i IN array_lower(b, 1) .. array_upper(b, 1) LOOP
        IF b[i] IS NOT NULL THEN
            a[i] := coalesce(a[i], 0) + b[i];
        END IF;
    END LOOP;
    RETURN a;
END
$$;

-- Error counts by code, as a JSON object. (PL/pgSQL rather than SQL with subqueries: its plans
-- are cached per connection, where a SQL function's would be made again in every statement.)
CREATE FUNCTION observe_count_codes(codes text[]) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    counts jsonb := '{}';
    code text;
BEGIN
    FOREACH code IN ARRAY coalesce(codes, '{}') LOOP
        CONTINUE WHEN code IS NULL;
        counts := counts || jsonb_build_object(code, coalesce((counts ->> code)::bigint, 0) + 1);
    END LOOP;
    RETURN counts;
END
$$;

CREATE FUNCTION observe_add_counts(a jsonb, b jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    code text;
    n text;
BEGIN
    FOR code, n IN SELECT * FROM jsonb_each_text(b) LOOP
        a := a || jsonb_build_object(code, coalesce((a ->> code)::bigint, 0) + n::bigint);
    END LOOP;
    RETURN a;
END
$$;

CREATE FUNCTION observe_bucket_start(grain text, at timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE grain WHEN 'hour' THEN date_trunc('hour', at, 'UTC')
                      WHEN 'day' THEN date_trunc('day', at, 'UTC')
                      ELSE '1970-01-01 00:00:00+00'::timestamptz END
$$;

-- --- folding requests into the rollups -----------------------------------------------------

-- Add a batch of request rows (one, as a request finishes; or many, to backfill) to the rollups.
-- A request's provider calls are its ledger rows with its request_id written while it ran.
CREATE FUNCTION observe_fold(batch request_log[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH requests AS (
        SELECT * FROM unnest(batch)
    ),
    ops AS (
        SELECT r.request_id, r.created_at AS finished_at, l.provider, l.model, l.kind, l.status, l.attempt,
               l.cache_hit, l.input_tokens, l.output_tokens, l.cost_usd, l.latency_ms
        FROM requests r
        JOIN usage_ledger l ON l.request_id = r.request_id
         AND l.created_at <= r.created_at
         AND l.created_at >= r.created_at - make_interval(secs => r.latency_ms / 1000 + 60)
    ),
    per_request AS (
        SELECT request_id, finished_at,
               bool_or(kind = 'chat') AS llm,
               bool_or(cache_hit) AS cache_hit,
               count(*) FILTER (WHERE status <> 'cached') AS operations,
               count(*) FILTER (WHERE status = 'error') AS failed_operations,
               count(*) FILTER (WHERE attempt > 1) AS retries,
               greatest(count(DISTINCT model) FILTER (WHERE kind = 'chat' AND status <> 'cached') - 1, 0) AS fallbacks,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               coalesce(sum(cost_usd), 0) AS cost_usd
        FROM ops GROUP BY request_id, finished_at
    ),
    per_target AS (  -- the same figures per request and model, and per request and provider
        SELECT request_id, finished_at, t.dim, t.key, kind, min(provider) AS provider,
               bool_or(kind = 'chat') AS llm,
               bool_or(cache_hit) AS cache_hit,
               count(*) FILTER (WHERE status <> 'cached') AS operations,
               count(*) FILTER (WHERE status = 'error') AS failed_operations,
               count(*) FILTER (WHERE attempt > 1) AS retries,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               coalesce(sum(cost_usd), 0) AS cost_usd
        FROM ops CROSS JOIN LATERAL (VALUES ('model', model), ('provider', provider)) AS t(dim, key)
        GROUP BY request_id, finished_at, t.dim, t.key, kind
    ),
    members AS (  -- each request once in every group it belongs to
        SELECT r.created_at, r.status, r.error_code, r.latency_ms, r.ttfb_ms, g.dim, g.key, '' AS kind,
               '' AS provider, coalesce(p.llm, false) AS llm, coalesce(p.cache_hit, false) AS cache_hit,
               coalesce(p.operations, 0) AS operations, coalesce(p.failed_operations, 0) AS failed_operations,
               coalesce(p.retries, 0) AS retries, coalesce(p.fallbacks, 0) AS fallbacks,
               coalesce(p.input_tokens, 0) AS input_tokens, coalesce(p.output_tokens, 0) AS output_tokens,
               coalesce(p.cost_usd, 0) AS cost_usd
        FROM requests r
        LEFT JOIN per_request p ON p.request_id = r.request_id AND p.finished_at = r.created_at
        CROSS JOIN LATERAL (VALUES ('function', r.function), ('user', coalesce(r.user_id, '')),
                                   ('namespace', coalesce(r.namespace, '')), ('caller', coalesce(r.caller, '')))
                           AS g(dim, key)
        UNION ALL
        SELECT r.created_at, r.status, r.error_code, r.latency_ms,
               CASE WHEN t.kind = 'chat' THEN r.ttfb_ms END, t.dim, t.key, t.kind, t.provider, t.llm,
               t.cache_hit, t.operations, t.failed_operations, t.retries, p.fallbacks, t.input_tokens,
               t.output_tokens, t.cost_usd
        FROM requests r
        JOIN per_target t ON t.request_id = r.request_id AND t.finished_at = r.created_at
        JOIN per_request p ON p.request_id = r.request_id AND p.finished_at = r.created_at
    ),
    grains AS (
        SELECT * FROM (VALUES ('hour'), ('day'), ('total')) AS g(grain)
    ),
    request_figures AS (
        SELECT g.grain, m.dim, observe_bucket_start(g.grain, m.created_at) AS bucket_start, m.key, m.kind,
               max(m.provider) AS provider,
               count(*) AS requests,
               count(*) FILTER (WHERE m.status BETWEEN 400 AND 499) AS client_errors,
               count(*) FILTER (WHERE m.status >= 500) AS server_errors,
               observe_count_codes(array_agg(m.error_code)) AS error_codes,
               sum(m.latency_ms) AS latency_ms_sum,
               observe_histogram(array_agg(m.latency_ms), observe_latency_bounds()) AS latency_counts,
               count(m.ttfb_ms) AS streams,
               coalesce(sum(m.ttfb_ms), 0) AS ttfb_ms_sum,
               observe_histogram(array_agg(m.ttfb_ms) FILTER (WHERE m.ttfb_ms IS NOT NULL),
                                 observe_latency_bounds()) AS ttfb_counts,
               count(*) FILTER (WHERE m.llm) AS llm_requests,
               count(*) FILTER (WHERE m.cache_hit) AS cache_hits,
               sum(m.operations) AS operations, sum(m.failed_operations) AS failed_operations,
               sum(m.retries) AS retries, sum(m.fallbacks) AS fallbacks,
               sum(m.input_tokens) AS input_tokens, sum(m.output_tokens) AS output_tokens,
               sum(m.cost_usd) AS cost_usd
        FROM members m CROSS JOIN grains g
        WHERE g.grain <> 'total' OR m.dim IN ('function', 'model')
        GROUP BY 1, 2, 3, 4, 5
    ),
    operation_figures AS (
        SELECT g.grain, t.dim, observe_bucket_start(g.grain, o.finished_at) AS bucket_start, t.key, o.kind,
               coalesce(sum(o.latency_ms) FILTER (WHERE o.status <> 'cached'), 0) AS operation_ms_sum,
               observe_histogram(array_agg(o.latency_ms) FILTER (WHERE o.status <> 'cached'),
                                 observe_latency_bounds()) AS operation_counts,
               observe_histogram(array_agg(o.input_tokens::float8) FILTER (WHERE o.status = 'ok'),
                                 observe_token_bounds()) AS input_token_counts,
               observe_histogram(array_agg(o.output_tokens::float8) FILTER (WHERE o.status = 'ok' AND o.kind = 'chat'),
                                 observe_token_bounds()) AS output_token_counts
        FROM ops o
        CROSS JOIN LATERAL (VALUES ('model', o.model), ('provider', o.provider)) AS t(dim, key)
        CROSS JOIN grains g
        WHERE g.grain <> 'total' OR t.dim = 'model'
        GROUP BY 1, 2, 3, 4, 5
    )
    INSERT INTO metrics_rollup AS m (
        grain, dim, bucket_start, key, kind, provider, requests, client_errors, server_errors, error_codes,
        latency_ms_sum, latency_counts, streams, ttfb_ms_sum, ttfb_counts, llm_requests, cache_hits,
        operations, failed_operations, retries, fallbacks, input_tokens, output_tokens, cost_usd,
        operation_ms_sum, operation_counts, input_token_counts, output_token_counts)
    SELECT f.grain, f.dim, f.bucket_start, f.key, f.kind, f.provider, f.requests, f.client_errors,
           f.server_errors, f.error_codes, f.latency_ms_sum, f.latency_counts, f.streams, f.ttfb_ms_sum,
           f.ttfb_counts, f.llm_requests, f.cache_hits, f.operations, f.failed_operations, f.retries,
           f.fallbacks, f.input_tokens, f.output_tokens, f.cost_usd, o.operation_ms_sum, o.operation_counts,
           o.input_token_counts, o.output_token_counts
    FROM request_figures f
    LEFT JOIN operation_figures o USING (grain, dim, bucket_start, key, kind)
    ORDER BY f.grain, f.dim, f.bucket_start, f.key, f.kind  -- one lock order for every writer
    ON CONFLICT (grain, dim, bucket_start, key, kind) DO UPDATE SET
        provider = EXCLUDED.provider,
        requests = m.requests + EXCLUDED.requests,
        client_errors = m.client_errors + EXCLUDED.client_errors,
        server_errors = m.server_errors + EXCLUDED.server_errors,
        error_codes = observe_add_counts(m.error_codes, EXCLUDED.error_codes),
        latency_ms_sum = m.latency_ms_sum + EXCLUDED.latency_ms_sum,
        latency_counts = observe_add(m.latency_counts, EXCLUDED.latency_counts),
        streams = m.streams + EXCLUDED.streams,
        ttfb_ms_sum = m.ttfb_ms_sum + EXCLUDED.ttfb_ms_sum,
        ttfb_counts = observe_add(m.ttfb_counts, EXCLUDED.ttfb_counts),
        llm_requests = m.llm_requests + EXCLUDED.llm_requests,
        cache_hits = m.cache_hits + EXCLUDED.cache_hits,
        operations = m.operations + EXCLUDED.operations,
        failed_operations = m.failed_operations + EXCLUDED.failed_operations,
        retries = m.retries + EXCLUDED.retries,
        fallbacks = m.fallbacks + EXCLUDED.fallbacks,
        input_tokens = m.input_tokens + EXCLUDED.input_tokens,
        output_tokens = m.output_tokens + EXCLUDED.output_tokens,
        cost_usd = m.cost_usd + EXCLUDED.cost_usd,
        operation_ms_sum = coalesce(m.operation_ms_sum, 0) + coalesce(EXCLUDED.operation_ms_sum, 0),
        operation_counts = observe_add(m.operation_counts, EXCLUDED.operation_counts),
        input_token_counts = observe_add(m.input_token_counts, EXCLUDED.input_token_counts),
        output_token_counts = observe_add(m.output_token_counts, EXCLUDED.output_token_counts);
END
$$;

-- One finished request: its row and its rollups, in one statement from the application.
-- A stream answers 200 before it is done; when its last provider call failed after that, the
-- row says so (502, or 499 when the client went away) so it counts as the failure it was.
CREATE FUNCTION observe_record(
    p_request_id text, p_function text, p_method text, p_status integer, p_error_code text,
    p_latency_ms double precision, p_ttfb_ms double precision, p_caller text, p_user_id text,
    p_namespace text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    finished request_log;
    last_status text;
    last_code text;
BEGIN
    IF p_ttfb_ms IS NOT NULL AND p_status < 400 THEN
        SELECT status, error_code INTO last_status, last_code FROM usage_ledger
        WHERE request_id = p_request_id
          AND created_at >= now() - make_interval(secs => p_latency_ms / 1000 + 60)
        ORDER BY id DESC LIMIT 1;
        IF last_status = 'error' THEN
            p_status := CASE WHEN last_code = 'client_closed' THEN 499 ELSE 502 END;
            p_error_code := coalesce(last_code, 'stream_failed');
        END IF;
    END IF;
    INSERT INTO request_log (request_id, function, method, status, error_code, latency_ms, ttfb_ms, caller,
                             user_id, namespace)
    VALUES (p_request_id, p_function, p_method, p_status, p_error_code, p_latency_ms, p_ttfb_ms, p_caller,
            p_user_id, p_namespace)
    RETURNING * INTO finished;
    PERFORM observe_fold(ARRAY[finished]);
END
$$;
